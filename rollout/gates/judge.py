"""The rollout gates: may a stack's proposed rollout state replace the deployed one?

:func:`judge` takes one :class:`~rollout.model.transition.Transition` (the
deployed, proposed and upstream states, the evidence and the clock, parsed once
where they entered: :mod:`rollout.model.stored`) and returns the violations.
The same function runs in ``rollout check``, ``rollout advance`` and the
CrossGuard policy pack, so all three refuse exactly the same transitions.

Every service is judged on what changes against what is deployed of it: its
deployed self under its key, or the deployed service whose route it takes over
(:func:`rollout.gates.ratchet.pairs`). Each gate is documented in its module:

- on every change: :mod:`rollout.gates.history` (the history is append-only in
  every direction, a new release starts a new rollout, stable takes only a
  completed release), a new service's stable release in a stack with
  ``promotesFrom`` (:mod:`rollout.gates.upstream`), and the live route
  (:mod:`rollout.gates.traffic`);
- on an advance (a weight goes UP): the next stage only, the soak served
  (:mod:`rollout.gates.traffic`), the canary within budget
  (:mod:`rollout.gates.budget`), staging first, no safety flag on, no loosening
  and stack files only (:mod:`rollout.gates.upstream`), every setting judged by
  the stricter of deployed and proposed (:mod:`rollout.gates.ratchet`), the fleet: no
  halt upstream, the fleet-wide limit, the release group in step
  (:mod:`rollout.gates.fleet`);
- on an advance, a release or a promote: no freeze window (:mod:`rollout.gates.fleet`).

A **promote** (stable takes the release the deployed canary ran at 100 %) is
judged like an advance out of the final stage: evidence must show the canary
within budget over its 100 % stage (:mod:`rollout.gates.budget`) and cover its
final soak from when it took its traffic (:mod:`rollout.gates.traffic`).

A service never deployed is judged by its history alone: a walk of its plan
from the first stage, each stage soaked. A lower weight (a rollback, appended)
and a safety flag switched on are never refused. The same weight is no advance
and needs no evidence.
"""

from __future__ import annotations

from rollout.gates.budget import canary_within_budget
from rollout.gates.fleet import fleet_halt, fleet_limit, freeze_window, release_group_in_step
from rollout.gates.history import history_append_only, new_release_new_rollout, stable_completed_only
from rollout.gates.names import (  # noqa: F401 - the gates' names, imported from here by their users
    CANARY_WITHIN_BUDGET,
    FLEET_HALT,
    FLEET_LIMIT,
    FREEZE_WINDOW,
    GATE_POLICIES,
    HISTORY_APPEND_ONLY,
    LIVE_ROUTE_RESPECTED,
    NEW_RELEASE_NEW_ROLLOUT,
    NEXT_STAGE_ONLY,
    NO_LOOSENING_ON_ADVANCE,
    NO_SAFETY_FLAG_ON_ADVANCE,
    RELEASE_GROUP_IN_STEP,
    SOAK_SERVED,
    STABLE_COMPLETED_ONLY,
    STACK_FILES_ONLY,
    STAGING_FIRST,
    GatePolicy,
    GateViolation,
)
from rollout.gates.ratchet import loosenings, pairs
from rollout.gates.traffic import live_route_respected, next_stage_only, promote_soak_covered, soak_served, walk
from rollout.model.releases import same_release
from rollout.gates.upstream import new_service_stable, no_loosening, no_safety_flag, stack_files_only, staging_first
from rollout.model.transition import Transition

_ORDER = list(GATE_POLICIES)


def judge(t: Transition) -> list[GateViolation]:
    """The violations of ``t`` in service order, then gate order; empty means allowed."""
    violations: list[GateViolation] = []
    found_pairs = pairs(t)
    raising = any(p.raises for p in found_pairs) if t.deployed_problem is None else True
    # Judged once for the change, reported on each service it advances.
    whole_change = (no_loosening(t) + stack_files_only(t) + no_safety_flag(t)) if raising else []
    for pair in found_pairs:
        found: list[tuple[str, str]] = []
        if t.deployed_problem:
            # Nothing is known about what runs; only 0 % is surely not an advance.
            if pair.proposed.weight > 0:
                violations.append(GateViolation(NEXT_STAGE_ONLY, pair.name,
                                                f"{t.deployed_problem}: an advance cannot be judged"))
            continue
        found += new_release_new_rollout(pair)
        found += stable_completed_only(pair, t.now)
        found += history_append_only(pair)
        found += new_service_stable(pair, t)
        found += freeze_window(pair, t)
        if pair.raises:
            if pair.deployed is None:
                found += walk(pair, t)
            else:
                found += next_stage_only(pair)
                found += soak_served(pair, t)
                found += canary_within_budget(pair, t)
            found += staging_first(pair, t)
            found += fleet_halt(pair, t)
            found += fleet_limit(pair, t)
            found += release_group_in_step(pair, t)
            found += whole_change
        elif promotes(pair):
            found += canary_within_budget(pair, t)
            found += promote_soak_covered(pair, t)
        found += live_route_respected(pair, t.evidence)
        for policy, message in sorted(found, key=lambda item: _ORDER.index(item[0])):
            violations.append(GateViolation(policy, pair.name, message))
    return violations


def promotes(pair) -> bool:
    """The change promotes the deployed canary's release at 100 % to the stable track."""
    old, new = pair.deployed, pair.proposed
    return (old is not None and old.weight == 100 and new.stable_image is not None
            and not same_release(new.stable_image, old.stable_image) and same_release(new.stable_image, old.canary_image))


def advancing_services(t: Transition) -> list[str]:
    """Services whose weight goes up from what is deployed of them (the ones the advance gates judge)."""
    if t.deployed_problem:
        return [name for name, service in sorted(t.proposed.services.items()) if service.weight > 0]
    return [pair.name for pair in pairs(t) if pair.raises]


__all__ = ["GATE_POLICIES", "GatePolicy", "GateViolation", "advancing_services", "judge", "loosenings", "promotes"]
