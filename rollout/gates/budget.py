"""``rollout-canary-within-budget``: the canary's SLIs over the deployed stage, from evidence.

Fresh evidence for this stack shows the canary within budget over the deployed
stage: error ratio, P95, P99 at or below their maxima, fewer consecutive failed
health checks than the maximum, at least ``minRequests`` requests. Missing,
stale or unreadable evidence and every query that did not return a number (no
data, NaN, error, Prometheus unreachable) refuse. The thresholds are the
stricter of the deployed and the new ones.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Mapping

from rollout.gates.names import CANARY_WITHIN_BUDGET
from rollout.model.config import CLOCK_SKEW
from rollout.model.durations import format_duration
from rollout.model.evidence import MEASURES, QUERY_STATUSES, TRAFFIC_MEASURES
from rollout.model.releases import same_release
from rollout.model.time import format_time, parse_time


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
    deployed_release = (deployed or {}).get("release")
    if "release" in record and deployed_release is not None and not same_release(record.get("release"), deployed_release):
        return [(gate, f"the evidence covers release {record.get('release')}, not the deployed {deployed_release}")]
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
