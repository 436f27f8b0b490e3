"""The rollout gates: may a stack's new rollout state replace the deployed one?

Pure functions over the JSON mappings of :mod:`rollout.state` and the evidence
written by ``rollout evidence`` (:mod:`rollout.evidence`). The same
:func:`judge` runs in ``rollout check``, ``rollout advance --evidence`` and the
CrossGuard policy pack, so all three refuse exactly the same transitions.

A service is judged only when its weight goes UP relative to the deployed state
(an *advance*). The same weight is no transition and needs no evidence. A lower
weight (a rollback) and a safety flag switched on are never blocked by any gate,
whatever the evidence says or lacks. (A diff that both switches a safety flag on
and raises a weight is refused for the raise; the flag alone never is.) An
advance must pass every gate:

``rollout-next-stage-only``
    The new weight is the stage of the plan right after the deployed weight.
``rollout-soak-served``
    The deployed stage has soaked its minimum, both by the clock and by the
    new stage's recorded start.
``rollout-canary-within-budget``
    Fresh evidence for this stack shows the canary within budget over the
    deployed stage: error ratio, P95, P99 at or below their maxima, fewer
    consecutive failed health checks than the maximum, at least ``minRequests``
    requests. Missing, stale or unreadable evidence and every query that did not
    return a number (no data, NaN, error, Prometheus unreachable) refuse.
``rollout-staging-first``
    A stack with ``promotesFrom`` enters a stage only after the upstream stack
    completed it: the upstream is past that weight, or at it with its soak served.
``rollout-no-safety-flag-on-advance``
    No safety flag is on in the new state.

Evidence format (only the keys the gates read)::

    {"stack": "staging", "collectedAt": "2026-11-26T20:00:00Z",
     "deployedState": {...rollout state...}, "upstreamState": {...} | null,
     "services": {"genesis": {"stageWeight": 10, "stageStartedAt": "...Z",
        "queries": {"<measure>": {"status": "ok", "value": 0.001, "query": "...",
                                   "detail": null}, ...}}}}

Measures are the keys of :data:`MEASURES`; statuses other than ``ok`` are the
values of :data:`QUERY_STATUSES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from rollout.config import CLOCK_SKEW
from rollout.durations import format_duration
from rollout.state import format_time, parse_time, stage_soak


@dataclass(frozen=True)
class GatePolicy:
    """A gate as the policy pack presents it: name, description, remediation."""

    name: str
    description: str
    remediation: str


NEXT_STAGE_ONLY = "rollout-next-stage-only"
SOAK_SERVED = "rollout-soak-served"
CANARY_WITHIN_BUDGET = "rollout-canary-within-budget"
STAGING_FIRST = "rollout-staging-first"
NO_SAFETY_FLAG_ON_ADVANCE = "rollout-no-safety-flag-on-advance"

#: Every gate by name, in the order they are judged. All are mandatory.
GATE_POLICIES: dict[str, GatePolicy] = {
    policy.name: policy
    for policy in (
        GatePolicy(
            NEXT_STAGE_ONLY,
            "A rollout advance goes to the next stage of the plan after the deployed weight, and no other.",
            "Advance one stage at a time with `rollout advance`; a lower weight (rollback) is always allowed.",
        ),
        GatePolicy(
            SOAK_SERVED,
            "The deployed stage has soaked at least its minimum before the next stage begins.",
            "Wait until `rollout status` shows the earliest advance time, then run `rollout advance` again.",
        ),
        GatePolicy(
            CANARY_WITHIN_BUDGET,
            "Fresh gate evidence shows the canary within its budget over the deployed stage "
            "(error ratio, P95, P99, consecutive failed health checks, minimum requests).",
            "Collect evidence with `rollout evidence` and pass it with --evidence; if the canary is over "
            "budget, fix it or roll back with `rollout rollback`.",
        ),
        GatePolicy(
            STAGING_FIRST,
            "A stack with promotesFrom enters a stage only after the upstream stack completed it.",
            "Advance the upstream stack (promotesFrom) to this stage and let it soak first.",
        ),
        GatePolicy(
            NO_SAFETY_FLAG_ON_ADVANCE,
            "No safety flag (emergency_shutdown, read_only_mode, maintenance_mode) is on during an advance.",
            "Switch the safety flag off in a change of its own before advancing the rollout.",
        ),
    )
}

#: The evidence's measures of the canary over a stage, with their units.
MEASURES: dict[str, str] = {
    "errorRatio": "error ratio",
    "latencyP95Seconds": "P95 latency (s)",
    "latencyP99Seconds": "P99 latency (s)",
    "consecutiveFailedHealthChecks": "longest run of failed health checks",
    "requests": "canary requests",
}
#: Measures that need canary traffic: waived while the deployed weight is 0,
#: because a canary at weight 0 receives no requests by design; its health
#: checks (the probes of its running pods) are still required.
TRAFFIC_MEASURES = ("errorRatio", "latencyP95Seconds", "latencyP99Seconds", "requests")

#: Query outcomes recorded in evidence. Only "ok" carries a value.
QUERY_STATUSES = {
    "ok": "a number",
    "empty": "no data (the query returned no series)",
    "nan": "no data (the query returned NaN)",
    "infinite": "an infinite value",
    "error": "Prometheus answered with an error",
    "timeout": "Prometheus did not answer in time",
    "unreachable": "Prometheus was unreachable",
}


@dataclass(frozen=True)
class GateViolation:
    """A refused advance: which gate, which service, and why (one sentence)."""

    policy: str
    service: str
    message: str


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
        if new["weight"] <= deployed_weight:
            # Same weight: no transition. Lower weight: a rollback, never blocked.
            continue
        found: list[tuple[str, str]] = []
        found += _next_stage_only(new, deployed, deployed_weight)
        found += _soak_served(new, deployed, deployed_weight, now)
        found += _canary_within_budget(name, new_state, deployed_state, deployed, evidence, now)
        found += _staging_first(name, new_state, upstream_state, now)
        found += _no_safety_flag(new_state)
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


def _stored(why: str | None) -> str | None:
    return why and f"the stored state of the service {why}"


def unreadable_service(service: Any) -> str | None:
    """Why a stored service state (deployed or upstream) cannot be judged, as a predicate
    ("has no weight"); None when it can."""
    if not isinstance(service, Mapping):
        return "is not an object"
    weight = service.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int):
        return "has no weight"
    try:
        parse_time(service.get("stageStartedAt"))
    except ValueError:
        return "has no readable stageStartedAt"
    stages = service.get("stages")
    if not isinstance(stages, list) or not all(
        isinstance(stage, Mapping) and isinstance(stage.get("weight"), int) and isinstance(stage.get("soakSeconds"), int)
        for stage in stages
    ):
        return "has no readable stages"
    return None


# --- the gates --------------------------------------------------------------------


def _next_stage_only(new: Mapping[str, Any], deployed: Mapping[str, Any] | None, deployed_weight: int):
    weights = [s["weight"] for s in new["stages"]]
    if deployed_weight not in weights:
        return [(NEXT_STAGE_ONLY, f"the deployed weight {deployed_weight}% is not a stage of plan {new['plan']} "
                 f"({', '.join(map(str, weights))}); only a rollback to 0% may leave it")]
    index = weights.index(deployed_weight)
    expected = weights[index + 1] if index + 1 < len(weights) else None
    if new["weight"] != expected:
        return [(NEXT_STAGE_ONLY, f"{deployed_weight}% -> {new['weight']}% skips a stage; "
                 f"the next stage of plan {new['plan']} after {deployed_weight}% is {expected}%")]
    return []


def _soak_served(new: Mapping[str, Any], deployed: Mapping[str, Any] | None, deployed_weight: int, now: datetime):
    if not deployed:
        return [(SOAK_SERVED, f"no deployed record of this service: its {deployed_weight}% stage has no known "
                 "start, so its soak cannot be shown")]
    try:
        started = parse_time(deployed["stageStartedAt"])
    except (KeyError, ValueError):
        return [(SOAK_SERVED, "the deployed state has no readable stage start")]
    soaks = [s for s in (stage_soak(deployed, deployed_weight), stage_soak(new, deployed_weight)) if s is not None]
    if not soaks:
        return []  # off the plan: rollout-next-stage-only already refuses
    # The longer of the deployed and the new plan's soak: a plan change in the same
    # diff cannot shorten the stage being left.
    soak = max(soaks)
    served_at = started + soak
    found = []
    if now < served_at:
        found.append((SOAK_SERVED, f"the {deployed_weight}% stage began {format_time(started)} and must soak "
                      f"{format_duration(soak)}: it may advance from {format_time(served_at)}, "
                      f"{format_duration(served_at - now)} from now"))
    else:
        try:
            entered = parse_time(new["stageStartedAt"])
        except (KeyError, ValueError):
            entered = None
        if entered is not None and entered < served_at:
            found.append((SOAK_SERVED, f"the history enters {new['weight']}% at {format_time(entered)}, before the "
                          f"{deployed_weight}% stage served its {format_duration(soak)} soak "
                          f"({format_time(served_at)})"))
    return found


def _thresholds(new_state: Mapping[str, Any], deployed_state: Mapping[str, Any] | None) -> dict[str, float]:
    """The stricter of the new and the deployed thresholds: loosening them in the
    same diff as an advance does not loosen the gate for that advance."""
    new = new_state.get("canary") or {}
    old = (deployed_state or {}).get("canary") or {}

    def pick(key: str, stricter) -> Any:
        values = [v for v in (new.get(key), old.get(key)) if isinstance(v, (int, float))]
        return stricter(values) if values else None

    return {
        "maxErrorRatio": pick("maxErrorRatio", min),
        "maxLatencyP95Seconds": pick("maxLatencyP95Seconds", min),
        "maxLatencyP99Seconds": pick("maxLatencyP99Seconds", min),
        "maxConsecutiveFailedHealthChecks": pick("maxConsecutiveFailedHealthChecks", min),
        "minRequests": pick("minRequests", max),
        "evidenceMaxAgeSeconds": pick("evidenceMaxAgeSeconds", min),
    }


def _canary_within_budget(
    name: str,
    new_state: Mapping[str, Any],
    deployed_state: Mapping[str, Any] | None,
    deployed: Mapping[str, Any] | None,
    evidence: Mapping[str, Any] | None,
    now: datetime,
):
    gate = CANARY_WITHIN_BUDGET
    if evidence is None:
        return [(gate, "no gate evidence: an advance must show the canary's SLIs over the deployed stage "
                 "(run `rollout evidence` and pass its file with --evidence)")]
    if not isinstance(evidence, Mapping):
        return [(gate, "the gate evidence is not a JSON object")]
    limits = _thresholds(new_state, deployed_state)
    stack = new_state.get("stack")
    if evidence.get("stack") != stack:
        return [(gate, f"the evidence is for stack {evidence.get('stack')!r}, not {stack!r}")]
    try:
        collected = parse_time(evidence.get("collectedAt"))
    except ValueError:
        return [(gate, "the evidence has no readable collectedAt time")]
    max_age = timedelta(seconds=limits["evidenceMaxAgeSeconds"] or 0)
    if collected > now + CLOCK_SKEW:
        return [(gate, f"the evidence was collected at {format_time(collected)}, in the future")]
    if now - collected > max_age:
        return [(gate, f"the evidence is stale: collected {format_time(collected)}, "
                 f"{format_duration(now - collected)} ago; evidenceMaxAge is {format_duration(max_age)}")]
    services = evidence.get("services")
    record = services.get(name) if isinstance(services, Mapping) else None
    if not isinstance(record, Mapping):
        return [(gate, "the evidence has no record of this service")]
    if deployed is not None and (
        record.get("stageWeight") != deployed.get("weight")
        or record.get("stageStartedAt") != deployed.get("stageStartedAt")
    ):
        return [(gate, f"the evidence covers the {record.get('stageWeight')}% stage from "
                 f"{record.get('stageStartedAt')}, not the deployed {deployed.get('weight')}% stage from "
                 f"{deployed.get('stageStartedAt')}")]
    queries = record.get("queries") if isinstance(record.get("queries"), Mapping) else {}
    deployed_weight = deployed.get("weight") if deployed else 0
    required = [m for m in MEASURES if deployed_weight > 0 or m not in TRAFFIC_MEASURES]
    found = []
    values: dict[str, float] = {}
    for measure in required:
        result = queries.get(measure)
        value = _value_of(result)
        if value is None:
            found.append((gate, f"{MEASURES[measure]}: {_why_no_value(result)}; no data is a failure, not a pass"))
        else:
            values[measure] = value
    checks = (
        ("errorRatio", "maxErrorRatio", lambda v, t: v <= t, "above the maximum of"),
        ("latencyP95Seconds", "maxLatencyP95Seconds", lambda v, t: v <= t, "above the maximum of"),
        ("latencyP99Seconds", "maxLatencyP99Seconds", lambda v, t: v <= t, "above the maximum of"),
        ("consecutiveFailedHealthChecks", "maxConsecutiveFailedHealthChecks", lambda v, t: v < t,
         "not fewer than the maximum of"),
        ("requests", "minRequests", lambda v, t: v >= t, "below the minimum of"),
    )
    for measure, limit_key, within, words in checks:
        if measure not in values:
            continue
        limit = limits[limit_key]
        if limit is None:
            found.append((gate, f"the state has no {limit_key} threshold to judge {MEASURES[measure]} by"))
        elif not within(values[measure], limit):
            found.append((gate, f"{MEASURES[measure]} over the {deployed_weight}% stage is "
                          f"{_show(values[measure])}, {words} {_show(limit)}"))
    return found


def _value_of(result: Any) -> float | None:
    if not isinstance(result, Mapping) or result.get("status") != "ok":
        return None
    value = result.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _why_no_value(result: Any) -> str:
    if not isinstance(result, Mapping):
        return "not in the evidence"
    status = result.get("status")
    why = QUERY_STATUSES.get(status, f"status {status!r}") if status != "ok" else "no finite value"
    detail = result.get("detail")
    return f"{why} ({detail})" if detail else why


def _show(value: float) -> str:
    return f"{value:.6g}"


def _staging_first(name: str, new_state: Mapping[str, Any], upstream_state: Mapping[str, Any] | None, now: datetime):
    upstream_name = new_state.get("promotesFrom")
    if not upstream_name:
        return []
    target = new_state["services"][name]["weight"]
    if not isinstance(upstream_state, Mapping):
        return [(STAGING_FIRST, f"no state of {upstream_name} to show it completed the {target}% stage")]
    if upstream_state.get("stack") != upstream_name:
        return [(STAGING_FIRST, f"the upstream state is for stack {upstream_state.get('stack')!r}, "
                 f"not {upstream_name!r}")]
    services = upstream_state.get("services")
    upstream = services.get(name) if isinstance(services, Mapping) else None
    if not upstream:
        return [(STAGING_FIRST, f"{upstream_name} has no service {name}")]
    why = _stored(unreadable_service(upstream))
    if why:
        return [(STAGING_FIRST, f"{upstream_name}: {why}")]
    weight = upstream["weight"]
    if weight > target:
        return []
    if weight < target:
        return [(STAGING_FIRST, f"{upstream_name} is at {weight}%; it must complete {target}% first")]
    soak = stage_soak(upstream, weight)
    started = parse_time(upstream["stageStartedAt"])
    if soak is None or now < started + soak:
        until = f" (until {format_time(started + soak)})" if soak is not None else ""
        return [(STAGING_FIRST, f"{upstream_name} entered {target}% at {format_time(started)} and has not "
                 f"completed its soak{until}")]
    return []


def _no_safety_flag(new_state: Mapping[str, Any]):
    flags = new_state.get("safetyFlagsOn") or []
    if flags:
        return [(NO_SAFETY_FLAG_ON_ADVANCE, f"the safety flag {', '.join(flags)} is on; "
                 "no stage may be entered until it is off")]
    return []
