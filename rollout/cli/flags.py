"""``rollout flags``: the flags as flagd resolves them now (or ``--at TIME``), for CI jobs (rollout.build.flag_values)."""

from __future__ import annotations

import argparse
import json
import sys

from rollout.build.flag_values import as_env, percentages, resolve
from rollout.cli.clock import now_of
from rollout.cli.output import EXIT_OK
from rollout.load.stack import load_stack


def cmd_flags(args: argparse.Namespace) -> int:
    config = load_stack(args.stack, args.project)
    # --at/--now: flagd's own evaluation, with the time it reads ($flagd.timestamp) set then.
    values = resolve(config, args.stack, args.targeting_key, args.track, at=args.now)
    if args.format == "env":
        # With --at/--now: each percentage and progressive flag's share then, too (FLAG_<KEY>_PERCENT).
        sys.stdout.write(as_env(values, percentages(config, now_of(args)) if args.now is not None else None))
    else:
        sys.stdout.write(json.dumps(values, indent=2, sort_keys=True) + "\n")
    return EXIT_OK
