"""Recording rules carrying the SLIs, so alerts, dashboards and gates read cheap series.

Names come from rollout.conventions (``level:metric:operations``); the metric
contract's names from the stack's ``rollout:metrics``.
"""

from __future__ import annotations

from alerts.model import Recording, le_matcher
from rollout import conventions as c
from rollout.config import StackConfig


def canary_slis(config: StackConfig) -> list[Recording]:
    """Per service and track over 5 minutes: the gates and rollback triggers read these."""
    m = config.metrics
    by = f"{c.SERVICE_LABEL}, {c.TRACK_LABEL}"
    buckets = f"sum by ({by}, le) (rate({m.request_duration_bucket}[5m]))"
    return [
        Recording(c.REQUEST_RATE, f"sum by ({by}) (rate({m.requests_total}[5m]))"),
        Recording(
            c.ERROR_RATIO,
            f'sum by ({by}) (rate({m.requests_total}{{{c.CODE_LABEL}=~"5.."}}[5m]))\n'
            f"  /\nsum by ({by}) (rate({m.requests_total}[5m]))",
        ),
        Recording(c.LATENCY_P50, f"histogram_quantile(0.5, {buckets})"),
        Recording(c.LATENCY_P95, f"histogram_quantile(0.95, {buckets})"),
        Recording(c.LATENCY_P99, f"histogram_quantile(0.99, {buckets})"),
        Recording(c.PROBE_SUCCESS_RATIO, f"avg by ({by}) (avg_over_time({m.probe_success}[5m]))"),
    ]


def slo_slis(config: StackConfig) -> list[Recording]:
    """Per service, one series per burn-rate window: the share of bad events.

    - errors: 5xx responses among all requests (the error-rate SLO);
    - slow: requests slower than the P95 objective (the latency SLO: at most 5 %
      of requests may be slower than it);
    - probe failures: failed blackbox checks (the availability SLO).
    """
    m = config.metrics
    le = le_matcher(config.slo.latency_p95_seconds)
    count = m.request_duration_bucket.removesuffix("_bucket") + "_count"
    rules = []
    for window in c.BURN_RATE_WINDOWS:
        rules += [
            Recording(
                c.ERROR_RATIO_OVER.format(window=window),
                f'sum by ({c.SERVICE_LABEL}) (rate({m.requests_total}{{{c.CODE_LABEL}=~"5.."}}[{window}]))\n'
                f"  /\nsum by ({c.SERVICE_LABEL}) (rate({m.requests_total}[{window}]))",
            ),
            Recording(
                c.SLOW_RATIO_OVER.format(window=window),
                f"1 - (\n  sum by ({c.SERVICE_LABEL}) (rate({m.request_duration_bucket}{{le=~\"{le}\"}}[{window}]))\n"
                f"    /\n  sum by ({c.SERVICE_LABEL}) (rate({count}[{window}]))\n)",
            ),
            Recording(
                c.PROBE_FAILURE_RATIO_OVER.format(window=window),
                f"1 - avg by ({c.SERVICE_LABEL}) (avg_over_time({m.probe_success}[{window}]))",
            ),
        ]
    return rules


def safety_flags(config: StackConfig) -> list[Recording]:
    """The safety flags' state from the stack config, so an alert and a dashboard see it."""
    return [
        Recording(
            c.SAFETY_FLAG_ENABLED,
            f"vector({1 if key in config.safety_flags_on() else 0})",
            {"flag": key},
        )
        for key in c.SAFETY_FLAGS
    ]
