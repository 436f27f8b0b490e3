"""The rollout gates as a table of transitions: which advances are refused, by which gate.

States are built with rollout.model.state from the shipped staging and production
stacks with a history chosen per case; the clock is fixed (NOW), so no case
depends on when it runs.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from rollout.gates.judge import (
    CANARY_WITHIN_BUDGET,
    FLEET_HALT,
    FLEET_LIMIT,
    FREEZE_WINDOW,
    GATE_POLICIES,
    RELEASE_GROUP_IN_STEP,
    LIVE_ROUTE_RESPECTED,
    HISTORY_APPEND_ONLY,
    NEW_RELEASE_NEW_ROLLOUT,
    STABLE_COMPLETED_ONLY,
    NEXT_STAGE_ONLY,
    NO_SAFETY_FLAG_ON_ADVANCE,
    SOAK_SERVED,
    STAGING_FIRST,
    NO_LOOSENING_ON_ADVANCE,
    STACK_FILES_ONLY,
    GateViolation,
)
from rollout.gates.judge import judge as judge_transition
from rollout.load.stack import load_stack
from rollout.model.state import rollout_state, service_state
from rollout.model.time import format_time
from rollout.model.stored import transition_from_json
from conftest import FIXTURE
from evidence_counts import counts, with_bounds

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
SERVICE = "genesis"


def state(stack: str = "staging", *weights_ago: tuple[int, timedelta], flags_on=(), canary=None) -> dict:
    """The stack's real state with the history replaced: (weight, how long ago it began)."""
    base = rollout_state(load_stack(stack, FIXTURE), stack, NOW)
    current = base["services"][SERVICE]
    history = [{"weight": w, "startedAt": NOW - ago, "reason": None} for w, ago in weights_ago]
    base["services"][SERVICE] = service_state(SERVICE, current["plan"], current["stages"], history, NOW, tracks(current))
    base["safetyFlagsOn"] = sorted(flags_on)
    if canary:
        base["canary"] = {**base["canary"], **canary}
    return base


def tracks(service: dict) -> dict:
    """The track inputs of a service state, for service_state."""
    canary, stable = service["canary"], service["stable"]
    return {"canary": {"image": canary["image"], "minReplicas": canary["minReplicas"]},
            "stable": {"image": stable["image"], "replicas": stable["replicas"], "previousImage": stable["previousImage"]}}


def advance(deployed: dict, weight: int, at: timedelta = timedelta(0), **changes) -> dict:
    """``deployed`` with one more history entry, ``at`` before NOW."""
    new = copy.deepcopy(deployed)
    service = new["services"][SERVICE]
    history = [*service["history"], {"weight": weight, "startedAt": NOW - at, "reason": changes.pop("reason", None)}]
    new["services"][SERVICE] = service_state(SERVICE, service["plan"], service["stages"], history, NOW, tracks(service))
    new.update(changes)
    return new


HEALTHY = {
    "errorRatio": 0.002,
    "latencyP95Seconds": 0.21,
    "latencyP99Seconds": 0.48,
    "consecutiveFailedHealthChecks": 1,
    "requests": 12_000,
    # The counts judged with confidence: 0.2 % errors, 0.1 % slower than 0.5 s, none slower than 1 s, and
    # the stable track over the same window, the baseline: alike (but 0.01 % slower than 1 s), 19 times the traffic.
    **counts(12_000),
    "stableLatencyP99SlowRequests": 23,
    "stableErrorRatio": 0.002,
    "stableLatencyP95Seconds": 0.2,
    "stableLatencyP99Seconds": 0.45,
}


def evidence(deployed: dict, collected_ago: timedelta = timedelta(minutes=2), stack=None, **measures) -> dict:
    """Evidence over the deployed stage: healthy measures unless overridden.

    A measure given as a string is a non-ok query status (``"empty"``, ``"nan"``,
    ``"unreachable"``, ...); a number is an ok value.
    """
    service = deployed["services"][SERVICE]
    queries = {}
    for measure, value in {**HEALTHY, **measures}.items():
        if isinstance(value, str):
            queries[measure] = {"status": value, "value": None, "query": "...", "detail": None}
        else:
            queries[measure] = {"status": "ok", "value": value, "query": "...", "detail": None}
        queries[measure] = with_bounds(measure, queries[measure])
    return {
        "kind": "rollout-gate-evidence",
        "version": 1,
        "stack": stack or deployed["stack"],
        "collectedAt": format_time(NOW - collected_ago),
        "deployedState": deployed,
        "upstreamState": None,
        "services": {
            SERVICE: {
                "stageWeight": service["weight"],
                "stageStartedAt": service["stageStartedAt"],
                "release": service["release"],
                # Prometheus saw the canary take its share from the stage's start on.
                "trafficSince": service["stageStartedAt"],
                "windowSeconds": 3600,
                "queries": queries,
            }
        },
    }


def judge(new, deployed, evidence_, upstream, now) -> list[GateViolation]:
    """The gates over the transition from ``deployed`` (as given, whatever the evidence says) to ``new``."""
    return judge_transition(transition_from_json(new, deployed, evidence_, upstream, now, deployed_from_evidence=False))


def judge_with_evidence(new, evidence_, now, deployed_state=None, upstream_state=None) -> list[GateViolation]:
    """The gates as the pack and ``rollout check`` call them: with evidence, its deployed state is deployed."""
    return judge_transition(transition_from_json(new, deployed_state, evidence_, upstream_state, now))


def policies(violations: list[GateViolation]) -> set[str]:
    return {v.policy for v in violations}


# Staging at 5 % for a day and a half (its one-day soak served) or for an hour (not).
AT_5_SOAKED = state("staging", (0, 3 * DAY), (5, DAY + timedelta(hours=12)))
AT_5_FRESH = state("staging", (0, 3 * DAY), (5, timedelta(hours=1)))
AT_50_SOAKED = state("staging", (0, 6 * DAY), (5, 5 * DAY), (10, 4 * DAY), (25, 3 * DAY), (50, 2 * DAY))
AT_50_FRESH = state("staging", (0, 6 * DAY), (5, 5 * DAY), (10, 4 * DAY), (25, 3 * DAY), (50, timedelta(minutes=5)))
AT_0_SOAKED = state("staging", (0, 2 * DAY))


ADVANCES = [
    pytest.param(AT_5_SOAKED, 25, evidence(AT_5_SOAKED), {NEXT_STAGE_ONLY}, id="5 -> 25 skips a stage and is denied"),
    pytest.param(AT_5_FRESH, 10, evidence(AT_5_FRESH), {SOAK_SERVED}, id="5 -> 10 before the 5% stage soaked a day is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED), set(), id="5 -> 10 after its soak with healthy evidence is allowed"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, errorRatio=0.02, errors=240), {CANARY_WITHIN_BUDGET},
                 id="5 -> 10 with 2 percent errors is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, errorRatio=0.0025, errors=30), set(),
                 id="5 -> 10 with 0.25 percent errors, under the budget and within 2x of stable (0.2 percent), is allowed"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, errorRatio=0.01, errors=120, stableErrorRatio=0.01,
                                           stableErrors=2280), {CANARY_WITHIN_BUDGET},
                 id="5 -> 10 with errors at the 1 percent maximum cannot be shown within it and holds"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, errorRatio=0.01, errors=120), {CANARY_WITHIN_BUDGET},
                 id="5 -> 10 with errors at the maximum, five times stable's, is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, latencyP99Seconds=1.2, latencyP99SlowRequests=240),
                 {CANARY_WITHIN_BUDGET}, id="5 -> 10 with a P99 of 1.2 s is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, latencyP95Seconds=0.6, latencyP95SlowRequests=960),
                 {CANARY_WITHIN_BUDGET}, id="5 -> 10 with a P95 of 600 ms is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, consecutiveFailedHealthChecks=5), {CANARY_WITHIN_BUDGET},
                 id="5 -> 10 after 5 consecutive failed health checks is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, consecutiveFailedHealthChecks=4), set(),
                 id="5 -> 10 after 4 consecutive failed health checks is allowed"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, requests=99), {CANARY_WITHIN_BUDGET},
                 id="5 -> 10 with fewer requests than the minimum is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, errorRatio="empty", requests="empty",
                                           latencyP95Seconds="empty", latencyP99Seconds="empty",
                                           consecutiveFailedHealthChecks="empty"),
                 {CANARY_WITHIN_BUDGET}, id="5 -> 10 with no data is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, latencyP99Seconds="nan"), {CANARY_WITHIN_BUDGET},
                 id="5 -> 10 with a NaN P99 is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, **{m: "unreachable" for m in HEALTHY}),
                 {CANARY_WITHIN_BUDGET}, id="5 -> 10 with Prometheus unreachable is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, errorRatio="error"), {CANARY_WITHIN_BUDGET},
                 id="5 -> 10 when Prometheus answered the error query with an error is denied"),
    pytest.param(AT_5_SOAKED, 10, None, {CANARY_WITHIN_BUDGET}, id="5 -> 10 without any evidence is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, collected_ago=timedelta(minutes=31)), {CANARY_WITHIN_BUDGET},
                 id="5 -> 10 with evidence older than evidenceMaxAge is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(AT_5_SOAKED, stack="production"), {CANARY_WITHIN_BUDGET},
                 id="5 -> 10 with another stack's evidence is denied"),
    pytest.param(AT_5_SOAKED, 10, evidence(state("staging", (0, 3 * DAY), (5, 2 * DAY))), {CANARY_WITHIN_BUDGET},
                 id="5 -> 10 with evidence of an earlier 5 percent stage is denied"),
    pytest.param(AT_0_SOAKED, 5, evidence(AT_0_SOAKED, **{m: "empty" for m in
                                                          ("errorRatio", "requests", "latencyP95Seconds", "latencyP99Seconds")}),
                 set(), id="0 -> 5 needs the canary's health checks but no traffic, which weight 0 does not get"),
    pytest.param(AT_0_SOAKED, 5, evidence(AT_0_SOAKED, consecutiveFailedHealthChecks="empty"), {CANARY_WITHIN_BUDGET},
                 id="0 -> 5 without health-check data is denied"),
]


@pytest.mark.parametrize("deployed, weight, evidence_, expected", ADVANCES)
def test_an_advance_passes_exactly_the_gates_it_should(deployed, weight, evidence_, expected):
    violations = judge(advance(deployed, weight), deployed, evidence_, None, NOW)
    assert policies(violations) == expected, violations
    assert all(v.service == SERVICE and v.message for v in violations)


def test_each_failing_measure_is_named_with_its_value_and_limit():
    violations = judge(
        advance(AT_5_SOAKED, 10), AT_5_SOAKED,
        evidence(AT_5_SOAKED, errorRatio=0.02, errors=240, latencyP99Seconds=1.2, latencyP99SlowRequests=240), None, NOW
    )
    messages = sorted(v.message for v in violations)
    assert messages == [
        "P99 latency (slower than 1 s): canary 2 % [1.8 %, 2.3 %] over 12,000 requests vs stable 0.01 % over "
        "228,000: above the budget of 1 % (fail)",
        "error ratio: canary 2 % [1.8 %, 2.3 %] over 12,000 requests vs stable 0.2 % over 228,000: above the "
        "budget of 1 % (fail)",
    ]


FAILING_EVIDENCE = [
    pytest.param(None, id="missing evidence"),
    pytest.param(evidence(AT_50_SOAKED, collected_ago=3 * DAY), id="stale evidence"),
    pytest.param(evidence(AT_50_SOAKED, errorRatio=0.4, latencyP99Seconds=9.0, consecutiveFailedHealthChecks=40),
                 id="failing evidence"),
    pytest.param(evidence(AT_50_SOAKED, **{m: "unreachable" for m in HEALTHY}), id="Prometheus unreachable"),
    pytest.param({"stack": "nonsense"}, id="evidence of another stack without any records"),
]


@pytest.mark.parametrize("deployed", [pytest.param(AT_50_SOAKED, id="after its soak"),
                                      pytest.param(AT_50_FRESH, id="five minutes into the stage")])
@pytest.mark.parametrize("evidence_", FAILING_EVIDENCE)
@pytest.mark.parametrize("flags_on", [(), ("emergency_shutdown",)], ids=["no safety flag", "a safety flag on"])
def test_a_rollback_from_50_to_0_is_allowed_in_every_state(deployed, evidence_, flags_on):
    new = advance(deployed, 0, reason="error budget burning", safetyFlagsOn=list(flags_on))
    assert judge(new, deployed, evidence_, None, NOW) == []
    # The evidence carries what is deployed: the rollback appends to exactly that history.
    carried = {**evidence_, "deployedState": deployed} if evidence_ and "deployedState" in evidence_ else evidence_
    assert judge_with_evidence(new, carried, NOW, deployed_state=deployed) == []


def test_a_rollback_in_production_is_allowed_while_staging_is_behind():
    deployed = state("production", (0, 3 * DAY), (5, 2 * DAY), (10, DAY + timedelta(hours=1)))
    staging = state("staging", (0, 3 * DAY))
    assert judge(advance(deployed, 0, reason="rollback"), deployed, None, staging, NOW) == []


PRODUCTION_AT_10 = state("production", (0, 4 * DAY), (5, 3 * DAY), (10, 2 * DAY))


@pytest.mark.parametrize(
    "staging, expected",
    [
        pytest.param(state("staging", (0, 5 * DAY), (5, 4 * DAY), (10, 3 * DAY)), {STAGING_FIRST},
                     id="production to 25 while staging is at 10 is denied"),
        pytest.param(state("staging", (0, 5 * DAY), (5, 4 * DAY), (10, 3 * DAY), (25, timedelta(hours=2))),
                     {STAGING_FIRST}, id="production to 25 while staging is two hours into 25 is denied"),
        pytest.param(state("staging", (0, 5 * DAY), (5, 4 * DAY), (10, 3 * DAY), (25, DAY + timedelta(hours=1))),
                     set(), id="production to 25 once staging soaked 25 is allowed"),
        pytest.param(state("staging", (0, 5 * DAY), (5, 4 * DAY), (10, 3 * DAY), (25, 2 * DAY), (50, timedelta(hours=1))),
                     set(), id="production to 25 while staging is already at 50 is allowed"),
        pytest.param(state("staging", (0, 5 * DAY), (5, 4 * DAY), (10, 3 * DAY), (25, 2 * DAY), (0, DAY)),
                     # Staging rolled the release back: production is also halted for it (the fleet halt).
                     {STAGING_FIRST, FLEET_HALT}, id="production to 25 after staging rolled back to 0 is denied"),
        pytest.param(None, {STAGING_FIRST}, id="production to 25 without staging's state is denied"),
        pytest.param(state("dev", (0, 5 * DAY), (5, 4 * DAY), (10, 3 * DAY), (25, 2 * DAY), (50, DAY)),
                     {STAGING_FIRST}, id="production to 25 with another stack's state as upstream is denied"),
    ],
)
def test_production_enters_a_stage_only_after_staging_completed_it(staging, expected):
    violations = judge(advance(PRODUCTION_AT_10, 25), PRODUCTION_AT_10, evidence(PRODUCTION_AT_10), staging, NOW)
    assert policies(violations) == expected, violations


def test_an_advance_with_a_safety_flag_on_is_denied():
    new = advance(AT_5_SOAKED, 10, safetyFlagsOn=["maintenance_mode"])
    violations = judge(new, AT_5_SOAKED, evidence(AT_5_SOAKED), None, NOW)
    assert violations == [
        GateViolation(NO_SAFETY_FLAG_ON_ADVANCE, SERVICE,
                      "the safety flag maintenance_mode is on; no stage may be entered until it is off")
    ]


@pytest.mark.parametrize("evidence_", [None, evidence(AT_5_FRESH, errorRatio=0.5)], ids=["without evidence", "with failing evidence"])
def test_switching_a_safety_flag_on_is_allowed(evidence_):
    new = copy.deepcopy(AT_5_FRESH)
    new["safetyFlagsOn"] = ["emergency_shutdown", "read_only_mode"]
    assert judge(new, AT_5_FRESH, evidence_, None, NOW) == []


def test_the_same_weight_is_no_transition_and_needs_no_evidence():
    assert judge(AT_5_FRESH, AT_5_FRESH, None, None, NOW) == []


def test_a_stack_never_deployed_is_judged_by_its_history_alone():
    """No deployed state at all: the history must walk the plan from 0, each stage soaked."""
    walked = advance(AT_0_SOAKED, 5)
    assert judge(walked, None, None, None, NOW) == []
    assert judge(AT_0_SOAKED, None, None, None, NOW) == []
    unsoaked = state("staging", (0, timedelta(hours=1)), (5, timedelta(0)))
    assert policies(judge(unsoaked, None, None, None, NOW)) == {SOAK_SERVED}
    skipped = state("staging", (0, 3 * DAY), (10, DAY))
    assert policies(judge(skipped, None, None, None, NOW)) == {NEXT_STAGE_ONLY}
    jumped = state("staging", (0, 4 * DAY), (5, 3 * DAY), (10, 2 * DAY), (100, DAY))
    violations = judge(jumped, None, None, None, NOW)
    assert policies(violations) == {NEXT_STAGE_ONLY} and "10% -> 100%" in violations[0].message
    not_from_zero = state("staging", (10, 2 * DAY))
    assert policies(judge(not_from_zero, None, None, None, NOW)) == {NEXT_STAGE_ONLY}
    # A safety flag on refuses the walk too, as any advance.
    assert policies(judge(advance(AT_0_SOAKED, 5, safetyFlagsOn=["maintenance_mode"]), None, None, None, NOW)) == {
        NO_SAFETY_FLAG_ON_ADVANCE}


def test_loosening_the_thresholds_in_the_same_change_does_not_loosen_the_gate():
    new = advance(AT_5_SOAKED, 10, canary={**AT_5_SOAKED["canary"], "maxErrorRatio": 0.5})
    violations = judge(new, AT_5_SOAKED, evidence(AT_5_SOAKED, errorRatio=0.02, errors=240), None, NOW)
    assert policies(violations) == {CANARY_WITHIN_BUDGET, NO_LOOSENING_ON_ADVANCE}
    # Healthy evidence: the loosening alone refuses the advance, and says what it loosens.
    (loosened,) = judge(new, AT_5_SOAKED, evidence(AT_5_SOAKED), None, NOW)
    assert loosened.policy == NO_LOOSENING_ON_ADVANCE and "canary.maxErrorRatio 0.01 → 0.5" in loosened.message
    # The same loosening in a change of its own (no weight up) passes.
    alone = copy.deepcopy(AT_5_SOAKED)
    alone["canary"] = {**alone["canary"], "maxErrorRatio": 0.5}
    assert judge(alone, AT_5_SOAKED, None, None, NOW) == []


def test_a_history_that_enters_the_stage_before_the_soak_ended_is_denied():
    # The clock says the soak is served, but the new entry was backdated into it.
    new = advance(AT_5_SOAKED, 10, at=DAY)
    assert policies(judge(new, AT_5_SOAKED, evidence(AT_5_SOAKED), None, NOW)) == {SOAK_SERVED}


def test_evidence_carries_the_deployed_state_the_gates_compare_with():
    # The evidence says 5 % is deployed; the working tree jumps from 10 to 25,
    # which looks like a single stage from 10 but is a skip from what is deployed.
    local = state("staging", (0, 3 * DAY), (5, 2 * DAY), (10, timedelta(hours=1)))
    violations = judge_with_evidence(advance(local, 25), evidence(AT_5_SOAKED), NOW, deployed_state=local)
    assert NEXT_STAGE_ONLY in policies(violations)


def test_every_gate_has_a_kebab_case_name_description_and_remediation():
    assert list(GATE_POLICIES) == [
        HISTORY_APPEND_ONLY, NEW_RELEASE_NEW_ROLLOUT, STABLE_COMPLETED_ONLY, NEXT_STAGE_ONLY, SOAK_SERVED, CANARY_WITHIN_BUDGET, STAGING_FIRST, NO_SAFETY_FLAG_ON_ADVANCE,
        LIVE_ROUTE_RESPECTED, NO_LOOSENING_ON_ADVANCE, STACK_FILES_ONLY,
        FLEET_HALT, FLEET_LIMIT, RELEASE_GROUP_IN_STEP, FREEZE_WINDOW,
    ]
    for name, policy in GATE_POLICIES.items():
        assert policy.name == name and name.startswith("rollout-") and name == name.lower()
        assert policy.description.endswith(".") and policy.remediation


@pytest.mark.parametrize(
    "deployed",
    [
        pytest.param({"services": "genesis at 5"}, id="a deployed state that is not a rollout state"),
        pytest.param({"services": {SERVICE: {"weight": "5"}}}, id="a deployed service without a numeric weight"),
        pytest.param({"services": {SERVICE: {**AT_5_SOAKED["services"][SERVICE], "stageStartedAt": "yesterday"}}},
                     id="a deployed service without a readable stage start"),
    ],
)
def test_an_unreadable_deployed_state_refuses_an_advance_but_never_a_rollback(deployed):
    violations = judge(advance(AT_5_SOAKED, 10), deployed, evidence(AT_5_SOAKED), None, NOW)
    assert policies(violations) == {NEXT_STAGE_ONLY} and "cannot be judged" in violations[0].message
    assert judge(advance(AT_5_SOAKED, 0, reason="rollback"), deployed, None, None, NOW) == []


def test_an_unreadable_upstream_state_refuses_production():
    staging = {"stack": "staging", "services": {SERVICE: {"weight": 50}}}
    violations = judge(advance(PRODUCTION_AT_10, 25), PRODUCTION_AT_10, evidence(PRODUCTION_AT_10), staging, NOW)
    assert policies(violations) == {STAGING_FIRST}


# --- the live route (the relay's fast path) ------------------------------------------------


def _live(deployed: dict, canary_weight: int | None, by_relay: bool = True) -> dict:
    proof = evidence(deployed)
    proof["services"][SERVICE]["liveRoute"] = None if canary_weight is None else {"canaryWeight": canary_weight, "setByRelay": by_relay}
    return proof


def test_an_up_that_keeps_the_canarys_traffic_is_refused_after_the_fast_path_took_it_out():
    # The stack file still says 5 %: deploying it unchanged would give the canary traffic again.
    violations = judge_with_evidence(AT_5_SOAKED, _live(AT_5_SOAKED, 0), NOW)
    assert [(v.policy, v.service) for v in violations] == [(LIVE_ROUTE_RESPECTED, SERVICE)]
    assert "relay's fast path took the canary out of traffic (live route 0 %, deployed 5 %)" in violations[0].message


def test_an_advance_past_the_fast_path_is_refused_too():
    assert LIVE_ROUTE_RESPECTED in policies(judge_with_evidence(advance(AT_5_SOAKED, 10), _live(AT_5_SOAKED, 0), NOW))


def test_the_recorded_rollback_deploys_and_after_it_a_new_rollout_may_start():
    rolled_back = advance(AT_5_SOAKED, 0, reason="CanaryErrorRateCritical firing since ...")
    assert judge_with_evidence(rolled_back, _live(AT_5_SOAKED, 0), NOW) == []
    # Deployed at 0 % now: the live 0 % agrees with it, and the gate has nothing to say.
    later = state("staging", (0, 3 * DAY), (5, 2 * DAY), (0, DAY + timedelta(hours=12)))
    assert LIVE_ROUTE_RESPECTED not in policies(judge_with_evidence(advance(later, 5), _live(later, 0), NOW))


@pytest.mark.parametrize("live", [5, None])
def test_a_live_route_that_agrees_or_was_not_read_refuses_nothing(live):
    assert judge_with_evidence(AT_5_SOAKED, _live(AT_5_SOAKED, live), NOW) == []


def test_loosening_the_confidence_settings_in_the_same_change_does_not_loosen_the_gate():
    # 0.5 % errors against stable's 0.2 %: 2.5 times stable, held under the tolerance of 2.
    worse = evidence(AT_5_SOAKED, errorRatio=0.005, errors=60)
    assert policies(judge(advance(AT_5_SOAKED, 10), AT_5_SOAKED, worse, None, NOW)) == {CANARY_WITHIN_BUDGET}
    loose = {"toleranceErrorRatio": 5.0, "confidence": 0.6, "negligible": 0.9}
    new = advance(AT_5_SOAKED, 10, canary={**AT_5_SOAKED["canary"], **loose})
    violations = judge(new, AT_5_SOAKED, worse, None, NOW)
    assert policies(violations) == {CANARY_WITHIN_BUDGET, NO_LOOSENING_ON_ADVANCE}
    (budget,) = [v for v in violations if v.policy == CANARY_WITHIN_BUDGET]
    assert "cannot yet show it within tolerance 2× of stable" in budget.message
    loosened = "\n".join(v.message for v in violations if v.policy == NO_LOOSENING_ON_ADVANCE)
    for words in ("canary.confidence.level 0.95 → 0.6", "canary.confidence.negligible 0.1 → 0.9",
                  "canary.confidence.tolerance.errorRatio 2 → 5"):
        assert words in loosened
    # Deployed with the looser settings, they apply.
    deployed = {**AT_5_SOAKED, "canary": new["canary"]}
    assert judge(advance(deployed, 10), deployed, evidence(deployed, errorRatio=0.005, errors=60), None, NOW) == []


def test_a_state_without_confidence_settings_cannot_judge_the_traffic():
    bare = {k: v for k, v in AT_5_SOAKED["canary"].items() if k in (
        "maxErrorRatio", "maxLatencyP95Seconds", "maxLatencyP99Seconds", "maxConsecutiveFailedHealthChecks",
        "minRequests", "evidenceMaxAgeSeconds")}
    deployed = {**AT_5_SOAKED, "canary": bare}
    (violation,) = judge(advance(deployed, 10), deployed, evidence(deployed), None, NOW)
    assert violation.message.startswith("the state has no confidence, negligible, tolerance.errorRatio")
