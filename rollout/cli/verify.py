"""``rollout verify``: smoke-test a deployed stack (rollout.ops.verify); exit 1 when a check fails."""

from __future__ import annotations

import argparse

from rollout.cli.options import retry
from rollout.cli.output import EXIT_OK, EXIT_REFUSED, say
from rollout.load.stack import load_stack
from rollout.ops.verify import verify


def cmd_verify(args: argparse.Namespace) -> int:
    config = load_stack(args.stack, args.project)
    report = verify(config, args.stack, args.prometheus, args.alertmanager, args.grafana, args.wait, retry(args), relay=args.relay)
    for line in report.passed:
        say(f"ok      {line}")
    for line in report.failed:
        say(f"FAILED  {line}")
    verdict = "healthy" if not report.failed else f"{len(report.failed)} check(s) failed"
    say(f"stack {args.stack}: {verdict}")
    return EXIT_REFUSED if report.failed else EXIT_OK
