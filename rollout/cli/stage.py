"""``rollout stage``: one command per step of a rollout.

For the service named (or each one with ``--all-services``), against what is
deployed (rollout.gates.deployed):

1. gathers the gate evidence over the deployed stage from the stack's Prometheus
   (``rollout evidence``; ``--prometheus``, else ``$PROMETHEUS_URL_<STACK>``) and
   writes it to ``build/<stack>-evidence.json``;
2. appends the next stage where the gates allow it (``rollout advance --evidence``;
   with ``--all-services`` each service the gates allow, the others reported);
3. writes the policy pack's config for the preview and the up, with that evidence,
   to ``build/policy-config-<stack>.json`` (``python -m policies.pack``).

Then ``make preview STACK=S`` and ``make up STACK=S`` run the engine with that
config (scripts/up), and a plain ``pulumi preview --policy-pack policies`` reads
it too while it is newer than the stack file (policies/resources.py).
Exit codes are ``rollout advance``'s: 0 advanced, 1 refused (the file unchanged,
the evidence still written), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from policies.pack import stack_config
from rollout.cli.clock import now_of
from rollout.cli.options import base_url, retry
from rollout.cli.output import say, write_file
from rollout.cli.stages import cmd_advance
from rollout.gates.deployed import resolve_deployed, resolve_upstream
from rollout.load.stack import load_stack
from rollout.model.errors import UsageError
from rollout.ops.evidence import dumps, gather, summary

#: Where the step's files go, relative to the project.
BUILD = "build"


def prometheus_url(args: argparse.Namespace) -> str:
    if args.prometheus:
        return args.prometheus
    name = f"PROMETHEUS_URL_{args.stack.upper().replace('-', '_').replace('.', '_')}"
    value = os.environ.get(name, "")
    if not value:
        raise UsageError(f"--prometheus: not given, and ${name} is not set; name the stack's Prometheus")
    try:
        return base_url(value)
    except argparse.ArgumentTypeError as err:
        raise UsageError(f"${name}: {err}") from None


def paths(project: Path, stack: str) -> tuple[Path, Path]:
    """The evidence file and the pack's config file of a stack's step."""
    folder = project / BUILD
    return folder / f"{stack}-evidence.json", folder / f"policy-config-{stack}.json"


def cmd_stage(args: argparse.Namespace) -> int:
    url = prometheus_url(args)
    now = now_of(args)
    config = load_stack(args.stack, args.project)
    evidence_file, config_file = paths(args.project, args.stack)
    evidence_file.parent.mkdir(parents=True, exist_ok=True)

    deployed = resolve_deployed(args.stack, args.project, now=now, base=args.base)
    upstream = None
    upstream_name = (deployed.raw or {}).get("promotesFrom") or config.promotes_from
    if upstream_name:
        upstream = resolve_upstream(upstream_name, args.project, now=now, base=args.base)
    for note in [*deployed.notes, *(upstream.notes if upstream else ())]:
        say(f"note: {note}", file=sys.stderr)
    evidence = gather(config, args.stack, url, retry(args), now, deployed.raw, deployed.source,
                      upstream.raw if upstream else None, upstream.source if upstream else None, args.live_routes)
    write_file(evidence_file, dumps(evidence), "evidence")
    for line in summary(evidence):
        say(line, file=sys.stderr)
    say(f"evidence: {evidence_file}", file=sys.stderr)

    advanced = cmd_advance(argparse.Namespace(**{**vars(args), "evidence": str(evidence_file)}))
    if args.dry_run:
        return advanced
    # Written whatever the verdict: a refused step still previews with its evidence.
    written = stack_config(args.stack, args.project, json.loads(evidence_file.read_text(encoding="utf-8")),
                           args.base, config=load_stack(args.stack, args.project))
    write_file(config_file, json.dumps(written, indent=2, sort_keys=True) + "\n", "policy config")
    say(f"policy config: {config_file} (`make preview STACK={args.stack}`, then `make up STACK={args.stack}`)",
        file=sys.stderr)
    return advanced
