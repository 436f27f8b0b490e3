"""Recording rules carrying the SLIs, so alerts, dashboards and gates read cheap series.

Names come from rollout.model.conventions (``level:metric:operations``); the metric
contract's names from the stack's ``rollout:metrics``. Each raw series family is
read once, into one 5-minute rate: requests by status code, duration buckets by
``le``, probe results. Everything else is built from those: request and error
rates from the rate by code, the quantiles from the bucket rate, and the
burn-rate windows (up to 3 days) from the per-service 5-minute rates rather
than from days of raw samples, which keeps evaluation cheap as the series count
grows (benchmarks/rulecost.py measures it against that floor).
"""

from __future__ import annotations

from alerts.model import Recording, le_matcher
from rollout.model import conventions as c
from rollout.model.config import StackConfig
from rollout.model.scope import select

BY = f"{c.SERVICE_LABEL}, {c.TRACK_LABEL}"
SERVER_ERRORS = f'{c.CODE_LABEL}=~"5.."'


def canary_slis(config: StackConfig) -> list[Recording]:
    """Per service and track over 5 minutes: the gates and rollback triggers read these."""
    m = config.metrics
    # The bucket rate is already one series per service, track and le: no sum needed.
    quantile = "histogram_quantile({q}, {rate})"
    bucket_rate = select(config, c.BUCKET_RATE)
    return [
        Recording(c.CODE_RATE, f"sum by ({BY}, {c.CODE_LABEL}) (rate({select(config, m.requests_total)}[5m]))"),
        Recording(c.REQUEST_RATE, f"sum by ({BY}) ({select(config, c.CODE_RATE)})"),
        Recording(c.ERRORS_RATE, f"sum by ({BY}) ({select(config, c.CODE_RATE, SERVER_ERRORS)})"),
        Recording(c.ERROR_RATIO, f"{select(config, c.ERRORS_RATE)}\n  /\n{select(config, c.REQUEST_RATE)}"),
        Recording(c.BUCKET_RATE, f"sum by ({BY}, le) (rate({select(config, m.request_duration_bucket)}[5m]))"),
        Recording(c.LATENCY_P50, quantile.format(q="0.5", rate=bucket_rate)),
        Recording(c.LATENCY_P95, quantile.format(q="0.95", rate=bucket_rate)),
        Recording(c.LATENCY_P99, quantile.format(q="0.99", rate=bucket_rate)),
        Recording(c.PROBE_SUCCESS_RATIO, f"avg by ({BY}) (avg_over_time({select(config, m.probe_success)}[5m]))"),
    ]


def slo_slis(config: StackConfig) -> list[Recording]:
    """Per service, one series per burn-rate window: the share of bad events.

    - errors: 5xx responses among all requests (the error-rate SLO);
    - slow: requests slower than the P95 objective (the latency SLO: at most 5 %
      of requests may be slower than it);
    - probe failures: failed blackbox checks (the availability SLO).

    A window's ratio is the sum of the 5-minute rates over the window, bad over
    all, which weighs each moment by its traffic like the raw ratio does.
    """
    le = le_matcher(config.slo.latency_p95_seconds)
    s = c.SERVICE_LABEL
    requests, errors_rate = select(config, c.SERVICE_REQUEST_RATE), select(config, c.SERVICE_ERRORS_RATE)
    fast, count = select(config, c.SERVICE_FAST_RATE), select(config, c.SERVICE_DURATION_COUNT_RATE)
    probe_success = select(config, c.SERVICE_PROBE_SUCCESS)
    within_objective, every_request = f'le=~"{le}"', 'le="+Inf"'
    rules = [
        Recording(c.SERVICE_REQUEST_RATE, f"sum by ({s}) ({select(config, c.REQUEST_RATE)})"),
        Recording(c.SERVICE_ERRORS_RATE, f"sum by ({s}) ({select(config, c.ERRORS_RATE)})"),
        Recording(c.SERVICE_FAST_RATE, f"sum by ({s}) ({select(config, c.BUCKET_RATE, within_objective)})"),
        Recording(c.SERVICE_DURATION_COUNT_RATE, f"sum by ({s}) ({select(config, c.BUCKET_RATE, every_request)})"),
        Recording(c.SERVICE_PROBE_SUCCESS, f"avg by ({s}) ({select(config, c.PROBE_SUCCESS_RATIO)})"),
    ]
    for window in c.BURN_RATE_WINDOWS:
        if window == "5m":
            errors = f"{errors_rate}\n  /\n{requests}"
            slow = f"1 - (\n  {fast}\n    /\n  {count}\n)"
            probes = f"1 - {probe_success}"
        else:
            errors = f"sum_over_time({errors_rate}[{window}])\n  /\nsum_over_time({requests}[{window}])"
            slow = (
                f"1 - (\n  sum_over_time({fast}[{window}])\n    /\n"
                f"  sum_over_time({count}[{window}])\n)"
            )
            probes = f"1 - avg_over_time({probe_success}[{window}])"
        rules += [
            Recording(c.ERROR_RATIO_OVER.format(window=window), errors),
            Recording(c.SLOW_RATIO_OVER.format(window=window), slow),
            Recording(c.PROBE_FAILURE_RATIO_OVER.format(window=window), probes),
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


def stage_index(weights: tuple[int, ...], weight: int) -> int:
    """The 1-based position of ``weight`` among a plan's stage weights; 0 when it is none of them."""
    return weights.index(weight) + 1 if weight in weights else 0


def rollout_state(config: StackConfig) -> list[Recording]:
    """Each service's rollout stage from the stack config, as series a dashboard can draw.

    Rewritten on every deploy, so the recorded history is the weight over time.
    The stage index is the weight's 1-based position in the service's plan, and 0
    when the weight is not a stage of the plan (a plan changed mid-rollout, from a
    weight the new plan skips: the next advance goes to the new plan's next stage).
    """
    rules = []
    for service in config.services:
        settings = service.rollout
        labels = {c.SERVICE_LABEL: service.name}
        weights = settings.plan_model.weights
        rules += [
            Recording(c.ROLLOUT_WEIGHT, f"vector({settings.weight})", labels),
            Recording(c.ROLLOUT_STAGE, f"vector({stage_index(weights, settings.weight)})", labels),
            Recording(c.ROLLOUT_STAGE_STARTED, f"vector({int(settings.current.started_at.timestamp())})", labels),
        ]
    return rules
