"""``rollout relay``: serve Alertmanager's rollback webhook and send each rollback trigger
as a ``repository_dispatch`` (rollout.ops.relay). Its tokens come from the environment."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from rollout.cli.options import retry
from rollout.cli.output import EXIT_OK, EXIT_REFUSED
from rollout.ops.fastpath import RouteError, RouteUpdater
from rollout.ops.relay import serve


def cmd_relay(args: argparse.Namespace) -> int:
    tokens = {}
    for name in ("ROLLOUT_RELAY_TOKEN", "GITHUB_TOKEN"):
        value = os.environ.get(name, "")
        if not value.strip():
            print(f"rollout: relay: {name} is not set: the relay needs it", file=sys.stderr)
            return EXIT_REFUSED
        tokens[name] = value.strip()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    route_update = None
    if args.fast_path:
        try:
            route_update = RouteUpdater.in_cluster(args.namespace)
        except (RouteError, OSError) as err:
            print(f"rollout: relay: --fast-path: {err}", file=sys.stderr)
            return EXIT_REFUSED
    try:
        serve(args.stack, args.listen, args.forge_url, args.repository, tokens["ROLLOUT_RELAY_TOKEN"],
              tokens["GITHUB_TOKEN"], retry(args), route_update)
    except OSError as err:
        print(f"rollout: relay: cannot listen on {args.listen[0]}:{args.listen[1]}: {err.strerror or err}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK
