"""Errors: the error-rate SLO and the canary's error-ratio rollback trigger."""

from __future__ import annotations

from alerts.burnrate import burn_rate_alerts
from alerts.model import Alert, Scenario, ratio
from alerts.performance import _after, _before
from alerts.series import Series
from rollout.model import conventions as c
from rollout.model.config import StackConfig
from rollout.model.scope import select
from rollout.model.durations import format_duration


CANARY, STABLE = (f'{c.TRACK_LABEL}="{track}"' for track in (c.CANARY, c.STABLE))


def alerts(config: StackConfig) -> list[Alert]:
    s = Series(config)
    canary = config.canary
    sustain = format_duration(canary.sustain_for)
    healthy = {**s.traffic("stable", 100), **s.traffic("canary", 100)}
    threshold = ratio(canary.max_error_ratio)
    rules = [
        Alert(
            name="CanaryErrorRateHigh",
            expr=f'{select(config, c.ERROR_RATIO, CANARY)} > {threshold}',
            for_=sustain,
            severity="critical",
            priority="P1",
            category="errors",
            summary="Canary of {{ $labels.service }} fails too many requests",
            description=f"More than {format(canary.max_error_ratio, '.2%')} of the canary's requests have failed (5xx) for {sustain}: roll the canary back.",
            rollback=True,
            scenario=Scenario(
                incident={**s.traffic("stable", 100), **s.traffic("canary", 100, errors_per_step=5)},
                healthy=healthy,
                quiet_at=_before(canary.sustain_for),
                firing_at=_after(canary.sustain_for),
                labels={"service": s.service, "track": c.CANARY},
            ),
        ),
        _fast_trigger(config),
        Alert(
            name="ServiceErrorRateHigh",
            expr=f'{select(config, c.ERROR_RATIO, STABLE)} > {threshold}',
            for_="10m",
            severity="warning",
            priority="P2",
            category="errors",
            summary="Stable track of {{ $labels.service }} fails too many requests",
            description=f"More than {format(canary.max_error_ratio, '.2%')} of the stable track's requests have failed (5xx) for 10 minutes.",
            scenario=Scenario(
                incident={**s.traffic("stable", 100, errors_per_step=5), **s.traffic("canary", 100)},
                healthy=healthy,
                quiet_at="9m",
                firing_at="12m",
                labels={"service": s.service, "track": c.STABLE},
            ),
        ),
    ]
    if config.monitoring.catalogue == "full":
        rules += burn_rate_alerts(
            config,
            slo_name="ErrorRate",
            series=c.ERROR_RATIO_OVER,
            budget=config.slo.error_ratio,
            category="errors",
            what="failed (5xx) requests",
            incident={**s.traffic("stable", 100, errors_per_step=100, steps=120), **s.traffic("canary", 100, errors_per_step=100, steps=120)},
            slow_burn_incident={**s.traffic("stable", 100, errors_per_step=1, steps=120), **s.traffic("canary", 100, errors_per_step=1, steps=120)},
            healthy={**s.traffic("stable", 100, steps=120), **s.traffic("canary", 100, steps=120)},
        )
    return rules


def _fast_trigger(config: StackConfig) -> Alert:
    """The short-window rollback trigger: a canary far over its error budget, now."""
    s = Series(config)
    canary = config.canary
    window = format_duration(canary.fast_trigger_window)
    hold = format_duration(canary.fast_trigger_window / 2)
    threshold = min(1.0, canary.max_error_ratio * canary.fast_trigger_factor)
    requests = select(config, config.metrics.requests_total, CANARY)
    errors = select(config, config.metrics.requests_total, CANARY, f'{c.CODE_LABEL}=~"5.."')
    by = f"{c.SERVICE_LABEL}, {c.TRACK_LABEL}"
    expr = (
        f"(\n  sum by ({by}) (rate({errors}[{window}]))\n    /\n  sum by ({by}) (rate({requests}[{window}]))\n) >= {ratio(threshold)}\n"
        f"and\nsum by ({by}) (increase({requests}[{window}])) >= {canary.fast_trigger_min_requests}"
    )
    # A canary failing every request, after a healthy start.
    failing = {
        **s.traffic("stable", 100),
        s.requests("canary"): "0+100x4 400x40",
        s.requests("canary", "500"): "0x4 0+100x40",
    }
    return Alert(
        name="CanaryErrorRateCritical",
        expr=expr,
        for_=hold,
        severity="critical",
        priority="P1",
        category="errors",
        summary="Canary of {{ $labels.service }} fails most of its requests",
        description=(
            f"At least {format(threshold, '.0%')} of the canary's requests failed (5xx) over {window}, "
            f"{canary.fast_trigger_factor:g} times its budget, for {hold}: roll the canary back now."
        ),
        rollback=True,
        scenario=Scenario(
            incident=failing,
            # Just over budget (2 %): the sustained trigger's case, not this one's.
            healthy={**s.traffic("stable", 100), **s.traffic("canary", 100, errors_per_step=2)},
            # The first errors are counted at 1m30s: pending from then, firing half a window later.
            quiet_at="1m45s",
            firing_at="2m15s",
            labels={"service": s.service, "track": c.CANARY},
        ),
    )
