"""The CrossGuard wrappers of policies/rules.py, built by policies/__main__.py, and their config.

Kept importable apart from __main__.py: constructing a PolicyPack starts its
gRPC server, so tests build the policy list from here and never the pack.

What the gates judge against arrives as policy config, the same object under
every gate: ``{"deployedState": {...}, "deployedStateSource": "...",
"upstreamState": {...}, "upstreamStateSource": "...", "upstreamStates": {...},
"fleet": {...}, "evidence": {...}, "changedFiles": [...]}`` (``upstreamStates``:
each upstream's state when ``promotesFrom`` names several; ``fleet``: the other
stacks the fleet gates read, rollout.gates.fleetread), written by ``python -m
policies.pack --stack S [--evidence FILE] [--base REF] [--deployed-state FILE]
[--rollback]`` (and by ``rollout stage``, to ``build/policy-config-<stack>.json``),
which decides what is deployed exactly as ``rollout check`` does
(rollout.gates.deployed: the backend's last applied state, else the stack file
at the git base, else never deployed). Resource policies default to mandatory;
the written config lowers them to advisory (``"<policy>": "advisory"``) for a
stack whose deployed and proposed tiers are both below production, as ``rollout
check`` does, and in every stack with ``--rollback``. policies/config/advisory.json
holds those entries alone, for a hand-run ``pulumi preview --policy-pack-config``.

A preview run without any config (a plain ``pulumi preview --policy-pack
policies``) reads ``build/policy-config-<stack>.json`` when ``rollout stage``
wrote it after the stack file's last change (policies/resources.py); otherwise
its gates judge against the stack file at HEAD without evidence, and say so.
"""

from __future__ import annotations

import threading

# The gates (policies.rules and what it imports) are imported where they are used, not
# here: policies/__main__.py serves the pack from the catalogue and imports them beside
# the program's run (policies/catalogue.py).

CONFIG_SCHEMA_PROPERTIES = {
    "evidence": {"type": "object"},
    "deployedState": {"type": "object"},
    "deployedStateSource": {"type": "string"},
    "upstreamState": {"type": "object"},
    "upstreamStateSource": {"type": "string"},
    "upstreamStates": {"type": "object"},
    "fleet": {"type": "object"},
    "changedFiles": {"type": "array", "items": {"type": "string"}},
}


class _Run:
    """One AnalyzeStack: the engine asks each stack policy once, in turn, over the same resources.
    Its policies judge at one instant and share one memo, so the transition is built and judged
    once, not once per gate."""

    def __init__(self) -> None:
        from rollout.model.time import utc_now

        self.now = utc_now()
        self.memo: dict = {}
        self.asked: set[str] = set()


_runs = {"current": None}
_runs_lock = threading.Lock()


def _run_of(policy: str) -> _Run:
    """The run this call of ``policy`` belongs to: a policy asked again starts the next run."""
    with _runs_lock:
        run = _runs["current"]
        if run is None or policy in run.asked:
            run = _runs["current"] = _Run()
        run.asked.add(policy)
        return run


def stale_catalogue(served: list[dict]) -> str | None:
    """Why the catalogue the pack was served with is not the gates' own, or None when it is."""
    from policies.catalogue import entries
    from policies.rules import POLICIES

    if served == entries(POLICIES):
        return None
    return ("the pack was served a stale catalogue of its policies (policies/catalogue.json), so a gate could "
            "go unasked: regenerate it with `python -m policies.catalogue > policies/catalogue.json`")


def _validate(name: str, served: list[dict]):
    def validate(args, report_violation) -> None:
        from policies.rules import POLICIES, Context, Resource

        stale = stale_catalogue(served)
        if stale is not None:
            report_violation(stale)  # fail closed: every policy, the gates included, refuses
            return
        (policy,) = [p for p in POLICIES if p.name == name]
        resources = [Resource(r.resource_type, r.name, r.props, r.urn) for r in args.resources]
        by_name = {r.name: r.urn for r in args.resources}
        run = _run_of(policy.name)
        context = Context(now=run.now, config=dict(args.get_config() or {}), memo=run.memo)
        for resource, message in policy.check(resources, context):
            report_violation(f"{resource}: {message}", by_name.get(resource))

    return validate


def crossguard_policies(catalogue: list[dict] | None = None) -> list:
    """One StackValidationPolicy per policy of rules.POLICIES, all mandatory by default.

    ``catalogue`` (policies/catalogue.json, as the pack's entry point passes it): the
    policies as served, without importing the gates; each one imports them when first
    asked, and refuses when the catalogue is not theirs. None: from the gates themselves."""
    from pulumi_policy import EnforcementLevel, PolicyConfigSchema, StackValidationPolicy

    if catalogue is None:
        from policies.catalogue import entries
        from policies.rules import POLICIES

        catalogue = entries(POLICIES)
    return [
        StackValidationPolicy(
            name=entry["name"],
            description=entry["description"],
            validate=_validate(entry["name"], catalogue),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(properties=CONFIG_SCHEMA_PROPERTIES) if entry["alwaysMandatory"] else None,
            remediation_steps=entry["remediation"],
        )
        for entry in catalogue
    ]


def advisory_config() -> dict:
    """Policy config that lowers the resource policies to advisory (non-production stacks)."""
    from policies.rules import POLICIES

    return {policy.name: "advisory" for policy in POLICIES if not policy.always_mandatory}


def policy_config(evidence: dict | None, advisory: bool, gates: dict | None = None) -> dict:
    """The CrossGuard policy config for a preview or an up: what the gates judge against
    (``gates``: the deployed and upstream states and their sources, the changed files)
    and the evidence under every gate, and (outside production) the resource policies
    lowered to advisory."""
    from policies.rules import POLICIES

    config: dict = {}
    shared = {key: value for key, value in (gates or {}).items() if value is not None}
    if evidence is not None:
        shared["evidence"] = evidence
    for policy in POLICIES:
        if policy.always_mandatory and shared:
            config[policy.name] = dict(shared)
    if advisory:
        config.update(advisory_config())
    return config


def _project():
    """The project judged: $ROLLOUT_PROJECT_DIR, else the folder holding Pulumi.yaml from the
    current one up (the pull request's checkout, whichever checkout the judging code comes from)."""
    import os
    from pathlib import Path

    from rollout.load.stack import PROJECT_ENV, project_root

    if os.environ.get(PROJECT_ENV):
        return project_root()
    start = Path.cwd().resolve()
    return next((folder for folder in (start, *start.parents) if (folder / "Pulumi.yaml").is_file()), project_root())


def stack_config(stack: str, project, evidence: dict | None = None, base: str | None = None,
                 deployed_file=None, rollback: bool = False, config=None) -> dict:
    """The pack's config for ``stack`` of ``project``: what ``python -m policies.pack`` prints and
    ``rollout stage`` writes. What is deployed is decided as ``rollout check`` decides it; ConfigError
    and UsageError go to the caller."""
    from rollout.gates.check import stack_transition
    from rollout.gates.ratchet import raises_weight, tier

    judged = stack_transition(stack, project, evidence=evidence, base=base, config=config, deployed_file=deployed_file)
    t = judged.transition
    gates = {
        "deployedState": judged.deployed_raw if evidence is None else None,
        "deployedStateSource": judged.deployed_source if evidence is None else None,
        "upstreamState": judged.upstream_raw,
        "upstreamStateSource": judged.upstream_source,
        # promotesFrom naming several stacks: each one's state; the fleet gates' view of the other stacks.
        "upstreamStates": judged.upstreams_raw or None,
        "fleet": judged.fleet_raw,
        "changedFiles": list(t.changed_files) if t.changed_files is not None else None,
    }
    # Beside an advance, the resource policies are mandatory while either tier is production.
    advisory = rollback or tier(t.proposed, t.deployed if raises_weight(t) else None) != "production"
    return policy_config(evidence, advisory, gates)


def main(argv: list[str] | None = None) -> int:
    """``python -m policies.pack --stack S [--evidence FILE] [--base REF] [--deployed-state FILE] [--rollback]``:
    print the policy config.

    Exit 2 with one line on stderr when the stack or the evidence cannot be read.
    """
    import argparse
    import json
    import sys

    from pathlib import Path

    from rollout.gates.check import load_evidence
    from rollout.load.stack import load_stack
    from rollout.model.errors import ConfigError, UsageError

    parser = argparse.ArgumentParser(description="Write the policy pack's config for a stack.")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--evidence", help="gate evidence from `rollout evidence`, handed to every gate")
    parser.add_argument(
        "--rollback",
        action="store_true",
        help="for the up that deploys a rollback: the resource policies advisory in every stack, so a "
        "policy added since the last deploy cannot hold an emergency rollback (the gates never refuse one)",
    )
    parser.add_argument("--base", help="the git ref whose stack file counts as deployed when the backend has none "
                        "(default HEAD); the files changed since it are handed to the gates")
    parser.add_argument("--deployed-state", help="the deployed state as a file (`pulumi stack output --json`)")
    args = parser.parse_args(argv)
    try:
        evidence = load_evidence(args.evidence) if args.evidence else None
        project = _project()
        config = load_stack(args.stack, project)
        written = stack_config(args.stack, project, evidence, args.base,
                               Path(args.deployed_state) if args.deployed_state else None, args.rollback, config)
    except ConfigError as err:
        print("\n".join(err.problems), file=sys.stderr)
        return 2
    except UsageError as err:
        print(f"policies.pack: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(written, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
