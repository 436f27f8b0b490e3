"""Gate evidence: what ``rollout evidence`` writes and the gates read.

Plain data, no I/O: the measures of the canary over a stage and the outcomes a
query may have. Written by :mod:`rollout.ops.evidence`, read by
:mod:`rollout.gates.judge`.

Evidence format (only the keys the gates read)::

    {"stack": "staging", "collectedAt": "2026-11-26T20:00:00Z",
     "deployedState": {...rollout state...}, "upstreamState": {...} | null,
     "services": {"genesis": {"stageWeight": 10, "stageStartedAt": "...Z",
        "release": "ghcr.io/example/genesis:1.5.0",
        "trafficSince": "...Z" | null,    # when the canary took the stage's share
        "liveRoute": {"canaryWeight": 0, "setByRelay": true,            # --live-routes
                      "managedFields": true} | null,  # false: who wrote it is not known
        "queries": {"<measure>": {"status": "ok", "value": 0.001, "query": "...",
                                   "detail": null}, ...}}}}

The slow-request counts also record the bound they counted above
(``"seconds": 0.5``): the gate judges them only against that same limit.

Measures are the keys of :data:`MEASURES`; statuses other than ``ok`` are the
values of :data:`QUERY_STATUSES`.
"""

from __future__ import annotations

#: The evidence's measures of the canary over a stage, with their units.
MEASURES: dict[str, str] = {
    "errorRatio": "error ratio",
    "latencyP95Seconds": "P95 latency (s)",
    "latencyP99Seconds": "P99 latency (s)",
    "consecutiveFailedHealthChecks": "longest run of failed health checks",
    "requests": "canary requests",
    "errors": "canary 5xx requests",
    "latencyP95SlowRequests": "canary requests slower than the P95 limit",
    "latencyP99SlowRequests": "canary requests slower than the P99 limit",
    "stableRequests": "stable requests",
    "stableErrors": "stable 5xx requests",
    "stableLatencyP95SlowRequests": "stable requests slower than the P95 limit",
    "stableLatencyP99SlowRequests": "stable requests slower than the P99 limit",
    "stableErrorRatio": "stable error ratio",
    "stableLatencyP95Seconds": "stable P95 latency (s)",
    "stableLatencyP99Seconds": "stable P99 latency (s)",
}
#: The stable track's measures: the baseline over the same window. Without them
#: the comparison with stable cannot be made (the measure can only pass when the
#: canary's share is surely negligible), but their absence alone refuses nothing.
STABLE_MEASURES = tuple(m for m in MEASURES if m.startswith("stable"))
#: Measures shown, never judged: the quantiles and ratios the proportions stand for.
DISPLAY_MEASURES = ("stableErrorRatio", "stableLatencyP95Seconds", "stableLatencyP99Seconds")
#: The proportions the gate judges with confidence: measure -> (label, the canary's
#: count of bad requests, the stable track's, the state's limit key, the share of
#: requests allowed over that limit: None for a ratio limit, 0.05 for P95's).
PROPORTIONS = {
    "errorRatio": ("error ratio", "errors", "stableErrors", "maxErrorRatio", None),
    "latencyP95": ("P95 latency", "latencyP95SlowRequests", "stableLatencyP95SlowRequests", "maxLatencyP95Seconds", 0.05),
    "latencyP99": ("P99 latency", "latencyP99SlowRequests", "stableLatencyP99SlowRequests", "maxLatencyP99Seconds", 0.01),
}
#: Measures that need canary traffic: waived while the deployed weight is 0,
#: because a canary at weight 0 receives no requests by design; its health
#: checks (the probes of its running pods) are still required.
TRAFFIC_MEASURES = ("errorRatio", "latencyP95Seconds", "latencyP99Seconds", "requests", "errors",
                    "latencyP95SlowRequests", "latencyP99SlowRequests", *STABLE_MEASURES)

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
