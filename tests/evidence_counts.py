"""The counts a healthy stage's evidence carries for the confidence judgement, for hand-made evidence.

The gate judges errors and the shares of requests slower than the P95 and P99
limits as proportions of the canary's requests, against the stable track's over
the same window (rollout.gates.confidence); evidence built by hand in the tests
carries those counts beside the ratios and quantiles it always had.
"""

from __future__ import annotations

#: The latency bound each slow count was counted above: the shipped stacks' limits.
SLOW_BOUNDS = {"latencyP95SlowRequests": 0.5, "latencyP99SlowRequests": 1.0,
               "stableLatencyP95SlowRequests": 0.5, "stableLatencyP99SlowRequests": 1.0}


def counts(requests: float, errors: float = 0.002, slow_p95: float = 0.001, slow_p99: float = 0.0,
           stable_times: float = 19) -> dict[str, float]:
    """A stage in which the canary served ``requests`` with these shares of errors and of
    requests slower than the P95 and P99 limits, and the stable track ``stable_times`` as
    many with the same shares (a canary at 5 %)."""
    stable = requests * stable_times
    return {
        "errors": round(requests * errors), "latencyP95SlowRequests": round(requests * slow_p95),
        "latencyP99SlowRequests": round(requests * slow_p99), "stableRequests": stable,
        "stableErrors": round(stable * errors), "stableLatencyP95SlowRequests": round(stable * slow_p95),
        "stableLatencyP99SlowRequests": round(stable * slow_p99),
    }


def with_bounds(measure: str, record: dict) -> dict:
    """``record`` with the bound its slow count was counted above, as ``rollout evidence`` writes it."""
    return {**record, "seconds": SLOW_BOUNDS[measure]} if measure in SLOW_BOUNDS else record
