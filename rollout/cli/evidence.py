"""``rollout evidence``: the gate evidence (the canary's SLIs over the deployed stage) as JSON.

What counts as deployed is resolved by the gates (rollout.gates.check.deployed_states);
the measuring is rollout.ops.evidence's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rollout.cli.options import retry
from rollout.cli.clock import now_of
from rollout.cli.output import EXIT_OK, say, write_file
from rollout.gates.check import deployed_states
from rollout.load.stack import load_stack
from rollout.ops.evidence import dumps, gather, summary


def cmd_evidence(args: argparse.Namespace) -> int:
    config = load_stack(args.stack, args.project)
    # --now: the evidence's window ends then (a past stage, reproducibly).
    now = now_of(args)
    states = deployed_states(config, args.stack, args.project, now, deployed_file=args.deployed_state,
                             staging_file=args.staging_state, base=args.base)
    for note in states.notes:
        say(note, file=sys.stderr)
    evidence = gather(config, args.stack, args.prometheus, retry(args), now, states.deployed, states.deployed_source,
                      states.upstream, states.upstream_source, args.live_routes)
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
