"""Runs the policy pack's resource policies over what the program declares offline.

The same functions as the CrossGuard pack (policies/rules.py), called directly
on the resources Pulumi's mocks recorded: no gRPC server, no Pulumi CLI. The
gates run separately (rollout.gates.check), with the git base or evidence.
"""

from __future__ import annotations

from policies.rules import POLICIES, Context, Resource, run_policies
from rollout.engine.harness import ProgramRun


def resources_of(run: ProgramRun):
    """The recorded resources as policies see them (type, name, inputs, URN)."""
    return [Resource(r.type, r.name, r.inputs, r.urn) for r in run.resources]


def resource_violations(run: ProgramRun, now, deployed_tier: str | None = None):
    """Violations of every resource policy (not the gates) over a program run; mandatory
    in production, by the stricter of ``deployed_tier`` and the program's tier.

    The policies share one memo, as in the pack (policies/pack.py): without a
    ``deployed_tier`` each would otherwise resolve the deployed state (git) and
    build the transition again."""
    resource_policies = [p for p in POLICIES if not p.always_mandatory]
    context = Context(
        now=now,
        secret_values=tuple(run.secret_values),
        secret_paths={r.urn: r.secret_paths for r in run.resources},
        deployed_tier=deployed_tier,
        memo={},
    )
    return run_policies(resources_of(run), context, resource_policies)
