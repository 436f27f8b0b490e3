"""``rollout check``: the config, the program run offline, the pack's resource policies and the rollout gates.

Three verdicts, printed as each is reached: the program's resources
(rollout.engine.harness), the resource policies over them
(rollout.engine.policy_runner) and the gates over the transition
(rollout.gates.check). Exit 1 when any refuses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pulumi

from rollout.cli.clock import now_of
from rollout.cli.output import EXIT_OK, EXIT_REFUSED, say
from rollout.engine import harness
from rollout.engine.policy_runner import resource_violations
from rollout.gates.advice import warnings
from rollout.gates.check import format_violation, gate_report, load_evidence
from rollout.load.stack import load_stack
from rollout.model.errors import ConfigError


def cmd_check(args: argparse.Namespace) -> int:
    config = load_stack(args.stack, args.project)
    try:
        # Looked up on the module at each run: a test may swap the program runner.
        run = harness.run_program(args.stack, args.project)
    except pulumi.RunError as err:
        raise ConfigError(str(err).splitlines()) from None
    say(f"stack {args.stack}: config valid; {len(run.resources)} resources declared offline")
    for warning in warnings(config, args.stack):
        say(f"warning: {warning}")
    resources = check_resource_policies(args, run)
    gates = check_gates(args)
    return EXIT_REFUSED if EXIT_REFUSED in (resources, gates) else EXIT_OK


def check_resource_policies(args: argparse.Namespace, run) -> int:
    """The pack's resource policies over the declared resources: mandatory in production."""
    violations = resource_violations(run, now_of(args))
    for v in violations:
        level = "mandatory" if v.mandatory else "advisory"
        say(f"[{level}] {v.policy} ({v.resource}): {v.message}")
    mandatory = sum(v.mandatory for v in violations)
    say(
        f"stack {args.stack}: resource policies: {mandatory} mandatory, "
        f"{len(violations) - mandatory} advisory violation(s)"
    )
    return EXIT_REFUSED if mandatory else EXIT_OK


def check_gates(args: argparse.Namespace) -> int:
    """The rollout gates of ``rollout check`` (rollout.gates.check): print each violation, exit 1 on any."""
    evidence = load_evidence(Path(args.evidence)) if args.evidence else None
    report = gate_report(args.stack, args.project, evidence=evidence, base=args.base, now=now_of(args))
    for note in report.notes:
        say(f"note: {note}")
    for violation in report.violations:
        say(format_violation(violation))
    advancing = ", ".join(report.advancing) or "none"
    verdict = f"{len(report.violations)} gate violation(s)" if report.refused else "gates pass"
    say(f"stack {args.stack}: advancing: {advancing} (deployed: {report.deployed_source}); {verdict}")
    return EXIT_REFUSED if report.refused else EXIT_OK
