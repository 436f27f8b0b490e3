"""``rollout-canary-within-budget``: the canary's SLIs over the deployed stage, from evidence.

Fresh evidence for this stack shows the canary within budget over the deployed
stage: fewer consecutive failed health checks than the maximum, at least
``minRequests`` requests, and its error ratio and its shares of requests slower
than the P95 and P99 limits judged **pass** with confidence, against the budget
and against the stable track over the same window (:mod:`rollout.gates.confidence`).
A measure judged **fail** refuses; one judged **inconclusive** (the data cannot
tell yet) refuses too, saying so: the stage holds and keeps soaking. Missing,
stale or unreadable evidence and every query that did not return a number (no
data, NaN, error, Prometheus unreachable) refuse: no data is never a pass. The
thresholds and settings are the stricter of the deployed and the proposed ones
(:func:`rollout.gates.ratchet.thresholds`).
"""

from __future__ import annotations

from datetime import timedelta

from rollout.gates.confidence import INCONCLUSIVE, VERDICT_WORDS, judge_traffic
from rollout.gates.names import CANARY_WITHIN_BUDGET
from rollout.gates.ratchet import Pair, thresholds
from rollout.model.config import CLOCK_SKEW
from rollout.model.durations import format_duration
from rollout.model.evidence import MEASURES, QUERY_STATUSES, STABLE_MEASURES, TRAFFIC_MEASURES
from rollout.model.releases import same_release
from rollout.model.time import format_time
from rollout.model.transition import Measure, Transition

Found = list[tuple[str, str]]

#: Each measure's threshold, whether the value is within it, and how to say it is not. (The error
#: ratio and latency are judged as proportions with confidence: rollout.gates.confidence.)
CHECKS = (
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
    required = [m for m in MEASURES if (weight > 0 or m not in TRAFFIC_MEASURES) and m not in STABLE_MEASURES]
    found: Found = []
    values: dict[str, float] = {}
    for measure in required:
        result = record.measures.get(measure, Measure())
        if result.status == "ok" and result.value is not None:
            values[measure] = result.value
        else:
            found.append((gate, f"{MEASURES[measure]}: {why_no_value(result)}; no data is never a pass: "
                          f"{VERDICT_WORDS[INCONCLUSIVE]}"))
    # The stable track is the baseline: without it only the comparison is out of reach.
    values.update({m: r.value for m in STABLE_MEASURES
                   if (r := record.measures.get(m)) is not None and r.status == "ok" and r.value is not None})
    for measure, field, key, within, words in CHECKS:
        if measure not in values:
            continue
        limit = getattr(limits, field)
        if limit is None:
            found.append((gate, f"the state has no {key} threshold to judge {MEASURES[measure]} by"))
        elif not within(values[measure], limit):
            held = f": too few to judge; {VERDICT_WORDS[INCONCLUSIVE]}" if measure == "requests" else ""
            found.append((gate, f"{MEASURES[measure]} over the {weight}% stage is "
                          f"{_show(values[measure])}, {words} {_show(limit)}{held}"))
    enough = limits.min_requests is not None and values.get("requests", 0) >= limits.min_requests
    if weight > 0 and enough and all(m in values for m in required):
        found += [(gate, message) for message in judge_traffic(values, record.measures, limits)]
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
