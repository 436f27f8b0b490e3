"""``rollout relay``: serve Alertmanager's rollback webhook and send each rollback trigger
as a ``repository_dispatch`` (rollout.ops.relay, behind rollout.ops.serving's guard).
Its tokens come from the environment."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from aiohttp import web

from rollout.cli.options import retry
from rollout.cli.output import EXIT_OK, EXIT_REFUSED
from rollout.load.stack import load_stack
from rollout.ops import serving
from rollout.ops.fastpath import RouteError, RouteUpdater
from rollout.ops.http import public_url
from rollout.ops.relay import Forge, Metrics, Relay, serve


def cmd_relay(args: argparse.Namespace) -> int:
    tokens = {}
    for name in ("ROLLOUT_RELAY_TOKEN", "GITHUB_TOKEN"):
        value = os.environ.get(name, "")
        if not value.strip():
            print(f"rollout: relay: {name} is not set: the relay needs it", file=sys.stderr)
            return EXIT_REFUSED
        tokens[name] = value.strip()
    limits = serving.Limits()
    serving.configure_logging(tuple(tokens.values()), limits, sys.stderr)
    config = load_stack(args.stack, args.project)
    services = [service.name for service in config.services]
    # A member of a release group: its dispatch names the group (the Rollback workflow rolls back every member).
    groups = {member: group for group, members in config.release_groups.items() for member in members}
    metrics = Metrics()
    route_update = None
    if args.fast_path:
        try:
            route_update = RouteUpdater.in_cluster(args.namespace)
        except (RouteError, OSError) as err:
            print(f"rollout: relay: --fast-path: {err}", file=sys.stderr)
            return EXIT_REFUSED
    host, port = args.listen

    def started() -> None:
        logging.getLogger("rollout.ops.relay").info(
            "stack %s: relaying rollback triggers to %s/repos/%s/dispatches, listening on %s:%d%s",
            args.stack, public_url(args.forge_url).rstrip("/"), args.repository, host, port,
            " (fast path on)" if route_update else "",
        )

    async def run() -> None:
        forge = Forge(args.forge_url, args.repository, tokens["GITHUB_TOKEN"], retry(args), metrics)
        relay = Relay(args.stack, tokens["ROLLOUT_RELAY_TOKEN"], forge, metrics, route_update, services, groups)
        await serve(relay, host, port, limits, started)

    try:
        asyncio.run(run())
    except OSError as err:
        print(f"rollout: relay: cannot listen on {args.listen[0]}:{args.listen[1]}: {err.strerror or err}", file=sys.stderr)
        return EXIT_REFUSED
    except (KeyboardInterrupt, web.GracefulExit):
        pass
    return EXIT_OK
