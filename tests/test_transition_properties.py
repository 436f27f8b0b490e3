"""Generated pairs of deployed and proposed stack states, judged by the gates.

For any change that raises a weight, loosening any safety setting in the same
change never turns a refusal into a pass; and a rollback (the weight down, the
history appended), whatever else the change loosens, is never refused.
"""

from __future__ import annotations

import copy
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rollout.gates.judge import NO_LOOSENING_ON_ADVANCE, judge
from rollout.model.plans import BUILTIN_PLANS
from rollout.model.stored import transition_from_json
from test_release_gates import NOW, SERVICE, STAGING_R_AT_10, STAGING_R_AT_5_FRESH, evidence, state, then

HOUR = timedelta(hours=1)
FLAGS = ("emergency_shutdown", "read_only_mode", "maintenance_mode")


@st.composite
def deployed_states(draw) -> dict:
    """A stack at some stage of its plan, with the settings a gate reads drawn too."""
    stack = draw(st.sampled_from(["staging", "production"]))
    plan = draw(st.sampled_from(["safe", "fast"]))
    weights = BUILTIN_PLANS[plan].weights
    reached = draw(st.integers(0, len(weights) - 2))
    current_age = draw(st.integers(0, 60)) * HOUR
    history = [(w, current_age + (reached - i) * 2 * timedelta(days=1)) for i, w in enumerate(weights[:reached + 1])]
    deployed = state(stack, history=tuple(history), plan=plan,
                     flags_on=draw(st.lists(st.sampled_from(FLAGS), unique=True, max_size=1)))
    deployed["namespace"] = "rollout"
    if draw(st.booleans()):
        deployed["promotesFrom"] = "staging" if stack == "production" else None
    return deployed


LOOSENINGS = {
    "promotesFrom deleted": lambda s: s.update(promotesFrom=None),
    "safety flags off": lambda s: s.update(safetyFlagsOn=[]),
    "tier lowered": lambda s: s.update(tier="development"),
    "error budget loosened": lambda s: s.update(canary={**s["canary"], "maxErrorRatio": 0.9}),
    "fewer requests needed": lambda s: s.update(canary={**s["canary"], "minRequests": 0}),
    "evidence may be older": lambda s: s.update(canary={**s["canary"], "evidenceMaxAgeSeconds": 10 ** 7}),
    "namespace moved": lambda s: s.update(namespace="elsewhere"),
}


def loosened(proposed: dict, deployed: dict, how: str) -> dict:
    changed = copy.deepcopy(proposed)
    if how == "plan shortened":
        service = deployed["services"][SERVICE]
        history = changed["services"][SERVICE]["history"]
        return then(deployed, history[-1]["weight"], plan="instant" if service["plan"] == "fast" else "fast") \
            if len(history) > len(service["history"]) else changed
    LOOSENINGS[how](changed)
    return changed


def verdict(new: dict, deployed: dict, proof: dict | None) -> set[str]:
    upstream = STAGING_R_AT_10 if deployed["stack"] == "production" else None
    return {v.policy for v in judge(transition_from_json(new, deployed, proof, upstream, NOW))}


@settings(max_examples=150, deadline=None)
@given(deployed=deployed_states(), skip=st.booleans(), ago=st.integers(0, 30), healthy=st.booleans(),
       how=st.sampled_from([*LOOSENINGS, "plan shortened"]))
def test_loosening_a_safety_setting_beside_an_advance_never_turns_a_refusal_into_a_pass(deployed, skip, ago, healthy,
                                                                                         how):
    service = deployed["services"][SERVICE]
    weights = [s["weight"] for s in service["stages"]]
    target = weights[min(weights.index(service["weight"]) + (2 if skip else 1), len(weights) - 1)]
    proposed = then(deployed, target, ago * HOUR)
    proof = evidence(deployed, STAGING_R_AT_10) if healthy else evidence(deployed, errorRatio=0.5)
    before = verdict(proposed, deployed, proof)
    after = verdict(loosened(proposed, deployed, how), deployed, proof)
    if before:
        assert after, (how, before)
    if after != verdict(proposed, deployed, proof):
        # Whatever it changed, a loosening beside an advance is named as such.
        assert NO_LOOSENING_ON_ADVANCE in after, (how, after)


@settings(max_examples=150, deadline=None)
@given(deployed=deployed_states(), weight_index=st.integers(0, 5), ago=st.integers(0, 30),
       how=st.sampled_from([None, *LOOSENINGS]), proof=st.sampled_from(["none", "failing", "stale"]),
       flag_on=st.booleans())
def test_a_rollback_appended_is_never_refused(deployed, weight_index, ago, how, proof, flag_on):
    service = deployed["services"][SERVICE]
    lower = [w for w in (s["weight"] for s in service["stages"]) if w < service["weight"]] or [0]
    new = then(deployed, lower[min(weight_index, len(lower) - 1)], ago * timedelta(minutes=1), reason="rollback")
    if how is not None:
        LOOSENINGS[how](new)
    if flag_on:
        new["safetyFlagsOn"] = ["emergency_shutdown"]
    evidence_ = {"none": None, "failing": evidence(deployed, errorRatio=0.5, consecutiveFailedHealthChecks=50),
                 "stale": evidence(deployed, collected_ago=5 * 86400)}[proof]
    upstream = STAGING_R_AT_5_FRESH if deployed["stack"] == "production" else None
    assert judge(transition_from_json(new, deployed, evidence_, upstream, NOW)) == []
