"""``rollout check``: the config, the program run offline, the pack's resource policies and the rollout gates.

Three verdicts: the program's resources (rollout.engine.harness), the resource
policies over them (rollout.engine.policy_runner, with the deployed tier the gates
found) and the gates over the transition (rollout.gates.check). Exit 1 when any
refuses.
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
from rollout.gates.check import GateReport, format_violation, gate_report, load_evidence
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
    report = gate_report_of(args)
    # Mandatory in production: beside an advance, the stricter of the deployed and the proposed tier
    # (a lower tier lands in a change of its own, listed as a loosening).
    resources = check_resource_policies(args, run, report.deployed_tier if report.advancing else None)
    gates = check_gates(args, report)
    return EXIT_REFUSED if EXIT_REFUSED in (resources, gates) else EXIT_OK


def check_resource_policies(args: argparse.Namespace, run, deployed_tier: str | None = None) -> int:
    """The pack's resource policies over the declared resources: mandatory in production."""
    violations = resource_violations(run, now_of(args), deployed_tier)
    for v in violations:
        level = "mandatory" if v.mandatory else "advisory"
        say(f"[{level}] {v.policy} ({v.resource}): {v.message}")
    mandatory = sum(v.mandatory for v in violations)
    say(
        f"stack {args.stack}: resource policies: {mandatory} mandatory, "
        f"{len(violations) - mandatory} advisory violation(s)"
    )
    return EXIT_REFUSED if mandatory else EXIT_OK


def gate_report_of(args: argparse.Namespace) -> GateReport:
    """The gates' report for ``rollout check`` (rollout.gates.check), against what is deployed."""
    evidence = load_evidence(Path(args.evidence)) if args.evidence else None
    deployed_file = Path(args.deployed_state) if getattr(args, "deployed_state", None) else None
    return gate_report(args.stack, args.project, evidence=evidence, base=args.base, now=now_of(args),
                       deployed_file=deployed_file)


def check_gates(args: argparse.Namespace, report: GateReport | None = None) -> int:
    """The rollout gates of ``rollout check``: print each loosening and violation, exit 1 on any violation."""
    report = report or gate_report_of(args)
    for note in report.notes:
        say(f"note: {note}")
    for loosening in report.loosens:
        say(f"loosens: {loosening}")
    for override in report.overrides:
        say(f"override: {override}")
    for violation in report.violations:
        say(format_violation(violation))
    advancing = ", ".join(report.advancing) or "none"
    verdict = f"{len(report.violations)} gate violation(s)" if report.refused else "gates pass"
    say(f"stack {args.stack}: advancing: {advancing} (deployed: {report.deployed_source}); {verdict}")
    return EXIT_REFUSED if report.refused else EXIT_OK
