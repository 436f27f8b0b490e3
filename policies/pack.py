"""The CrossGuard wrappers of policies/rules.py, built by policies/__main__.py, and their config.

Kept importable apart from __main__.py: constructing a PolicyPack starts its
gRPC server, so tests build the policy list from here and never the pack.

``python -m policies.pack --stack S [--evidence FILE] [--rollback]`` prints the
policy config a preview or an up runs the pack with (:func:`policy_config`):
with ``--evidence``, ``{"evidence": <the file of rollout evidence>}`` under the
name of every gate (the deployed and upstream states travel inside the
evidence, as its ``deployedState`` and ``upstreamState``); outside production,
or with ``--rollback``, ``"advisory"`` under the name of every resource policy,
as policies/config/advisory.json holds and ``rollout check`` does by tier.
Resource policies are otherwise mandatory. A gate also accepts
``deployedState`` and ``upstreamState`` beside ``evidence``
(CONFIG_SCHEMA_PROPERTIES); this module does not write them there.
"""

from __future__ import annotations

from policies.rules import POLICIES, Context, Policy, Resource

CONFIG_SCHEMA_PROPERTIES = {
    "evidence": {"type": "object"},
    "deployedState": {"type": "object"},
    "upstreamState": {"type": "object"},
}


def _validate(policy: Policy):
    def validate(args, report_violation) -> None:
        from rollout.model.time import utc_now

        resources = [Resource(r.resource_type, r.name, r.props, r.urn) for r in args.resources]
        by_name = {r.name: r.urn for r in args.resources}
        context = Context(now=utc_now(), config=dict(args.get_config() or {}))
        for resource, message in policy.check(resources, context):
            report_violation(f"{resource}: {message}", by_name.get(resource))

    return validate


def crossguard_policies() -> list:
    """One StackValidationPolicy per policy of rules.POLICIES, all mandatory by default."""
    from pulumi_policy import EnforcementLevel, PolicyConfigSchema, StackValidationPolicy

    return [
        StackValidationPolicy(
            name=policy.name,
            description=policy.description,
            validate=_validate(policy),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(properties=CONFIG_SCHEMA_PROPERTIES) if policy.always_mandatory else None,
            remediation_steps=policy.remediation,
        )
        for policy in POLICIES
    ]


def advisory_config() -> dict:
    """Policy config that lowers the resource policies to advisory (non-production stacks)."""
    return {policy.name: "advisory" for policy in POLICIES if not policy.always_mandatory}


def policy_config(evidence: dict | None, advisory: bool) -> dict:
    """The CrossGuard policy config for a preview or an up: the gate evidence under
    every gate, and (outside production) the resource policies lowered to advisory."""
    config: dict = {}
    for policy in POLICIES:
        if policy.always_mandatory and evidence is not None:
            config[policy.name] = {"evidence": evidence}
    if advisory:
        config.update(advisory_config())
    return config


def main(argv: list[str] | None = None) -> int:
    """``python -m policies.pack --stack S [--evidence FILE] [--rollback]``: print the policy config.

    Exit 2 with one line on stderr when the stack or the evidence cannot be read.
    """
    import argparse
    import json
    import sys

    from rollout.gates.check import load_evidence
    from rollout.model.errors import ConfigError, UsageError
    from rollout.load.stack import load_stack

    parser = argparse.ArgumentParser(description="Write the policy pack's config for a stack.")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--evidence", help="gate evidence from `rollout evidence`, handed to every gate")
    parser.add_argument(
        "--rollback",
        action="store_true",
        help="for the up that deploys a rollback: the resource policies advisory in every stack, so a "
        "policy added since the last deploy cannot hold an emergency rollback (the gates never refuse one)",
    )
    args = parser.parse_args(argv)
    try:
        evidence = load_evidence(args.evidence) if args.evidence else None
        tier = load_stack(args.stack).tier
    except ConfigError as err:
        print("\n".join(err.problems), file=sys.stderr)
        return 2
    except UsageError as err:
        print(f"policies.pack: {err}", file=sys.stderr)
        return 2
    advisory = args.rollback or tier != "production"
    sys.stdout.write(json.dumps(policy_config(evidence, advisory), indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
