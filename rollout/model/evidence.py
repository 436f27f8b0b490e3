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
