"""``rollout evidence``: the gate evidence (the canary's SLIs over the deployed stage) as JSON.

What counts as deployed is resolved by the gates (rollout.gates.deployed); the
measuring is rollout.ops.evidence's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rollout.cli.options import retry
from rollout.cli.clock import now_of
from rollout.cli.output import EXIT_OK, say, write_file
from rollout.gates.deployed import resolve_deployed, resolve_upstream
from rollout.load.stack import load_stack
from rollout.ops.evidence import dumps, gather, summary


def cmd_evidence(args: argparse.Namespace) -> int:
    config = load_stack(args.stack, args.project)
    # --now: the evidence's window ends then (a past stage, reproducibly).
    now = now_of(args)
    # What is deployed: the one answer of rollout.gates.deployed (file, backend, git base, never).
    deployed = resolve_deployed(args.stack, args.project, now=now, base=args.base,
                                state_file=Path(args.deployed_state) if args.deployed_state else None)
    for note in deployed.notes:
        say(f"note: {note}", file=sys.stderr)
    upstream = None
    upstream_name = (deployed.raw or {}).get("promotesFrom") or config.promotes_from
    if upstream_name:
        upstream = resolve_upstream(upstream_name, args.project, now=now, base=args.base,
                                    state_file=Path(args.staging_state) if args.staging_state else None)
        for note in upstream.notes:
            say(f"note: {note}", file=sys.stderr)
    evidence = gather(config, args.stack, args.prometheus, retry(args), now, deployed.raw, deployed.source,
                      upstream.raw if upstream else None, upstream.source if upstream else None, args.live_routes)
    text = dumps(evidence)
    if args.out:
        out = Path(args.out)
        write_file(out, text, "--out")
        for line in summary(evidence):
            say(line)
        say(f"evidence written to {out}")
    else:
        sys.stdout.write(text)
        for line in summary(evidence):
            say(line, file=sys.stderr)
    return EXIT_OK
