"""The rollout gates: may a stack's new rollout state replace the deployed one?

The same :func:`judge` runs in ``rollout check``, ``rollout advance --evidence``
and the CrossGuard policy pack, so all three refuse exactly the same transitions.
Every service is judged on what changes against the deployed state. What a
rollout promotes is a **release** (the canary's image; its digest when given,
:mod:`rollout.model.releases`).

The gates, each documented in its module: :mod:`rollout.gates.history` (judged
on every change), :mod:`rollout.gates.traffic`, :mod:`rollout.gates.budget` and
:mod:`rollout.gates.upstream` (judged on an advance, the weight going UP; the
live route on every change). A lower weight (a rollback) and a safety flag
switched on are never refused: a rollback is judged by no advance gate,
whatever the release, the history or the evidence, and the history gate only
asks that it remove no deployed entry. The same weight is no advance and needs
no evidence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from rollout.gates.budget import _canary_within_budget
from rollout.gates.history import (
    _history_append_only,
    _new_release_new_rollout,
    _rollback_appended,
    _stable_completed_only,
    _stored,
    unreadable_service,
)
from rollout.gates.names import (  # noqa: F401 - the gates' names, imported from here by their users
    CANARY_WITHIN_BUDGET,
    GATE_POLICIES,
    HISTORY_APPEND_ONLY,
    LIVE_ROUTE_RESPECTED,
    NEW_RELEASE_NEW_ROLLOUT,
    NEXT_STAGE_ONLY,
    NO_SAFETY_FLAG_ON_ADVANCE,
    SOAK_SERVED,
    STABLE_COMPLETED_ONLY,
    STAGING_FIRST,
    GatePolicy,
    GateViolation,
)
from rollout.gates.traffic import _live_route_respected, _next_stage_only, _soak_served
from rollout.gates.upstream import _no_safety_flag, _staging_first


def judge(
    new_state: Mapping[str, Any],
    deployed_state: Mapping[str, Any] | None,
    evidence: Mapping[str, Any] | None,
    upstream_state: Mapping[str, Any] | None,
    now: datetime,
) -> list[GateViolation]:
    """Judge every service of ``new_state`` against the deployed state.

    ``deployed_state`` is the state running now (from the evidence, the stack's
    outputs or the stack file at a git base); None, or a service missing from
    it, counts as "never deployed": weight 0 with no known stage start, so an
    advance above 0 is refused until a deployed 0 % stage has soaked.
    ``evidence`` is ``rollout evidence``'s JSON (None: no evidence);
    ``upstream_state`` is the state of ``new_state["promotesFrom"]``. Returns
    the violations in service order, then gate order; empty means allowed.
    """
    violations: list[GateViolation] = []
    unreadable = None
    deployed_services: Mapping[str, Any] = {}
    if deployed_state is not None:
        if isinstance(deployed_state, Mapping) and isinstance(deployed_state.get("services"), Mapping):
            deployed_services = deployed_state["services"]
        else:
            unreadable = "the deployed state is not a rollout state"
    for name in sorted(new_state.get("services") or {}):
        new = new_state["services"][name]
        deployed = deployed_services.get(name)
        why = unreadable or (deployed is not None and _stored(unreadable_service(deployed)))
        if why:
            # Nothing is known about what runs; only 0 % is surely not an advance.
            if new["weight"] > 0:
                violations.append(GateViolation(NEXT_STAGE_ONLY, name, f"{why}: an advance cannot be judged"))
            continue
        deployed_weight = deployed["weight"] if deployed else 0
        found: list[tuple[str, str]] = []
        # Judged on every change: what the canary and the stable track run.
        found += _new_release_new_rollout(new, deployed)
        found += _stable_completed_only(new, deployed, now)
        if new["weight"] >= deployed_weight:
            found += _history_append_only(new, deployed)
        else:
            # A rollback is never refused for what the history says, as long as it
            # is a new entry: removing deployed entries is no rollback.
            found += _rollback_appended(new, deployed)
        if new["weight"] > deployed_weight:
            found += _next_stage_only(new, deployed, deployed_weight)
            found += _soak_served(name, new, deployed, deployed_weight, evidence, now)
            found += _canary_within_budget(name, new_state, deployed_state, deployed, evidence, now)
            found += _staging_first(name, new_state, upstream_state, now)
            found += _no_safety_flag(new_state)
        found += _live_route_respected(name, new, deployed_weight, evidence)
        order = list(GATE_POLICIES)
        for policy, message in sorted(found, key=lambda item: order.index(item[0])):
            violations.append(GateViolation(policy, name, message))
    return violations


def judge_with_evidence(
    new_state: Mapping[str, Any],
    evidence: Mapping[str, Any] | None,
    now: datetime,
    deployed_state: Mapping[str, Any] | None = None,
    upstream_state: Mapping[str, Any] | None = None,
) -> list[GateViolation]:
    """:func:`judge`, taking the deployed and upstream states from the evidence when present.

    With evidence, "deployed" is the evidence's ``deployedState`` (its absence is
    then "never deployed") and the upstream is its ``upstreamState``; the
    arguments are the fallback used when there is no evidence (the policy pack
    and ``rollout check`` pass the stack file at the git base).
    """
    if evidence is not None:
        deployed_state = evidence.get("deployedState")
        upstream_state = evidence.get("upstreamState") or upstream_state
    return judge(new_state, deployed_state, evidence, upstream_state, now)


def advancing_services(new_state: Mapping[str, Any], deployed_state: Mapping[str, Any] | None) -> list[str]:
    """Services whose weight goes up from the deployed state (the ones the gates judge).

    As in :func:`judge`, a deployed state or service record that cannot be read
    leaves nothing known about what runs: every service above 0 % counts.
    """
    deployed = deployed_state.get("services") if isinstance(deployed_state, Mapping) else None
    readable = deployed_state is None or isinstance(deployed, Mapping)

    def deployed_weight(name: str) -> int:
        record = (deployed or {}).get(name)
        if record is None:
            return 0
        return 0 if unreadable_service(record) else record["weight"]

    return [
        name
        for name, service in sorted((new_state.get("services") or {}).items())
        if service["weight"] > (deployed_weight(name) if readable else 0)
    ]
