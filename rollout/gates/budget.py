"""``rollout-canary-within-budget``: the canary's SLIs over the deployed stage, from evidence.

Fresh evidence for this stack shows the canary within budget over the deployed
stage: error ratio, P95, P99 at or below their maxima, fewer consecutive failed
health checks than the maximum, at least ``minRequests`` requests. Missing,
stale or unreadable evidence and every query that did not return a number (no
data, NaN, error, Prometheus unreachable) refuse. The thresholds are the
stricter of the deployed and the proposed ones (:func:`rollout.gates.ratchet.thresholds`).
"""

from __future__ import annotations

from datetime import timedelta

from rollout.gates.names import CANARY_WITHIN_BUDGET
from rollout.gates.ratchet import Pair, thresholds
from rollout.model.config import CLOCK_SKEW
from rollout.model.durations import format_duration
from rollout.model.evidence import MEASURES, QUERY_STATUSES, TRAFFIC_MEASURES
from rollout.model.releases import same_release
from rollout.model.time import format_time
from rollout.model.transition import Measure, Transition

Found = list[tuple[str, str]]

#: Each measure's threshold, whether the value is within it, and how to say it is not.
CHECKS = (
    ("errorRatio", "max_error_ratio", "maxErrorRatio", lambda v, t: v <= t, "above the maximum of"),
    ("latencyP95Seconds", "max_latency_p95_seconds", "maxLatencyP95Seconds", lambda v, t: v <= t,
     "above the maximum of"),
    ("latencyP99Seconds", "max_latency_p99_seconds", "maxLatencyP99Seconds", lambda v, t: v <= t,
     "above the maximum of"),
    ("consecutiveFailedHealthChecks", "max_consecutive_failed_health_checks", "maxConsecutiveFailedHealthChecks",
     lambda v, t: v < t, "not fewer than the maximum of"),
    ("requests", "min_requests", "minRequests", lambda v, t: v >= t, "below the minimum of"),
)


def canary_within_budget(pair: Pair, t: Transition) -> Found:
    gate, evidence, deployed = CANARY_WITHIN_BUDGET, t.evidence, pair.deployed
    if evidence is None:
        return [(gate, "no gate evidence: an advance must show the canary's SLIs over the deployed stage "
                 "(run `rollout evidence` and pass its file with --evidence)")]
    if evidence.problem:
        return [(gate, evidence.problem)]
    limits = thresholds(t)
    stack = t.proposed.stack
    if evidence.stack != stack:
        return [(gate, f"the evidence is for stack {evidence.stack_text}, not {stack!r}")]
    collected = evidence.collected_at
    if collected is None:
        return [(gate, "the evidence has no readable collectedAt time")]
    max_age = limits.evidence_max_age or timedelta(0)
    if collected > t.now + CLOCK_SKEW:
        return [(gate, f"the evidence was collected at {format_time(collected)}, in the future")]
    if t.now - collected > max_age:
        return [(gate, f"the evidence is stale: collected {format_time(collected)}, "
                 f"{format_duration(t.now - collected)} ago; evidenceMaxAge is {format_duration(max_age)}")]
    record = evidence.services.get(pair.name)
    if record is None:
        return [(gate, "the evidence has no record of this service")]
    if deployed is not None and (record.stage_weight != deployed.weight
                                 or record.stage_started_at != deployed.stage_started_at):
        return [(gate, f"the evidence covers the {record.stage_weight_text}% stage from "
                 f"{record.stage_started_text}, not the deployed {deployed.weight}% stage from "
                 f"{format_time(deployed.stage_started_at)}")]
    deployed_release = deployed.canary_image if deployed is not None else None
    if record.records_release and deployed_release is not None and not same_release(record.release, deployed_release):
        return [(gate, f"the evidence covers release {record.release}, not the deployed {deployed_release}")]
    weight = pair.deployed_weight
    required = [m for m in MEASURES if weight > 0 or m not in TRAFFIC_MEASURES]
    found: Found = []
    values: dict[str, float] = {}
    for measure in required:
        result = record.measures.get(measure, Measure())
        if result.status == "ok" and result.value is not None:
            values[measure] = result.value
        else:
            found.append((gate, f"{MEASURES[measure]}: {why_no_value(result)}; no data is a failure, not a pass"))
    for measure, field, key, within, words in CHECKS:
        if measure not in values:
            continue
        limit = getattr(limits, field)
        if limit is None:
            found.append((gate, f"the state has no {key} threshold to judge {MEASURES[measure]} by"))
        elif not within(values[measure], limit):
            found.append((gate, f"{MEASURES[measure]} over the {weight}% stage is "
                          f"{_show(values[measure])}, {words} {_show(limit)}"))
    return found


def why_no_value(result: Measure) -> str:
    if result.status is None:
        return "not in the evidence"
    status = result.status
    why = QUERY_STATUSES.get(status, f"status {status!r}") if status != "ok" else "no finite value"
    return f"{why} ({result.detail})" if result.detail else why


def _show(value: float) -> str:
    return f"{value:.6g}"


__all__ = ["canary_within_budget", "why_no_value"]
