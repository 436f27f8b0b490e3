"""Errors: the error-rate SLO and the canary's error-ratio rollback trigger."""

from __future__ import annotations

from statistics import NormalDist

from alerts.burnrate import burn_rate_alerts
from alerts.model import Alert, Recording, Scenario, ratio
from alerts.performance import _after, _before
from alerts.series import Series
from rollout.model import conventions as c
from rollout.model.config import StackConfig
from rollout.model.scope import select
from rollout.model.durations import format_duration
from datetime import timedelta


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
        _worse_than_stable(config),
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


def trigger_counts_name(config: StackConfig) -> str:
    """The recorded requests over the confidence trigger's window, by service, track and code."""
    return f"service_track_code:http_requests:increase{format_duration(config.canary.confidence.trigger_window)}"


def trigger_counts(config: StackConfig) -> list[Recording]:
    """What ``CanaryWorseThanStable`` compares, recorded once per evaluation: the requests by
    service, track and code over the trigger window. Its z-test names the canary's and stable's
    counts about fifteen times, and Prometheus would read the raw counters for each; recorded
    in the alert's own group, ahead of it, it reads them once and the alert sees the counts of
    the same evaluation (rules of a group run in order), so its timings are those of the raw reads."""
    window = format_duration(config.canary.confidence.trigger_window)
    by = f"{c.SERVICE_LABEL}, {c.TRACK_LABEL}, {c.CODE_LABEL}"
    raw = select(config, config.metrics.requests_total)
    return [Recording(trigger_counts_name(config), f"sum by ({by}) (increase({raw}[{window}]))")]


def _worse_than_stable(config: StackConfig) -> Alert:
    """The rollback trigger for a canary significantly worse than stable, though maybe under its budget.

    Over ``confidence.triggerWindow``, a one-sided z-test that the canary's error
    ratio exceeds ``tolerance.errorRatio`` times stable's, at the gate's confidence
    (the z of the gate's two-sided bounds), on at least ``triggerMinRequests``
    canary requests and above the negligible share of the budget: the gate's
    "worse than stable beyond tolerance" verdict, in PromQL (the normal
    approximation stands in for the exact bounds there).
    """
    s = Series(config)
    canary, settings = config.canary, config.canary.confidence
    window = format_duration(settings.trigger_window)
    sustain = format_duration(canary.sustain_for)
    tolerance = settings.tolerance.error_ratio
    z = NormalDist().inv_cdf(1 - (1 - settings.level) / 2)
    floor = settings.negligible * canary.max_error_ratio

    def count(track: str, errors: bool = False) -> str:
        # The counts over the window, recorded ahead of this alert in its group (trigger_counts).
        code = f'{c.CODE_LABEL}=~"5.."' if errors else ""
        selector = select(config, trigger_counts_name(config), f'{c.TRACK_LABEL}="{track}"', code)
        return f"sum by ({c.SERVICE_LABEL}) ({selector})"

    canary_n, stable_n = count(c.CANARY), count(c.STABLE)
    # No 5xx series until a first error: 0 while the track serves requests.
    canary_e = f"({count(c.CANARY, True)} or {canary_n} * 0)"
    stable_e = f"({count(c.STABLE, True)} or {stable_n} * 0)"
    p_canary, p_stable = f"({canary_e} / {canary_n})", f"({stable_e} / {stable_n})"
    expr = (
        f"(\n  {p_canary} - {ratio(tolerance)} * {p_stable}\n)\n"
        f"> {z:.4f} * sqrt(\n  {p_canary} * (1 - {p_canary}) / {canary_n}\n"
        f"  + {ratio(tolerance * tolerance)} * {p_stable} * (1 - {p_stable}) / {stable_n}\n)\n"
        f"and\n{p_canary} > {ratio(floor)}\n"
        f"and\n{canary_n} >= {settings.trigger_min_requests}"
    )
    # A canary at 0.5 % errors, under the 1 % budget, against a stable track at 0.01 %.
    incident = {**s.traffic("stable", 1000), s.requests("canary"): "0+199x100", s.requests("canary", "500"): "0+1x100"}
    incident[s.requests("stable", "500")] = "0+0.1x100"
    incident[s.requests("stable")] = "0+999.9x100"
    return Alert(
        name="CanaryWorseThanStable",
        expr=expr,
        for_=sustain,
        severity="critical",
        priority="P1",
        category="errors",
        summary="Canary of {{ $labels.service }} fails significantly more requests than stable",
        description=(
            f"Over {window}, the canary's error ratio is above {tolerance:g} times the stable track's with "
            f"{format(settings.level, '.0%')} confidence (at least {settings.trigger_min_requests} canary requests, "
            f"above {format(floor, '.2%')}), for {sustain}, even if under its budget: roll the canary back."
        ),
        labels={c.TRACK_LABEL: c.CANARY},
        rollback=True,
        scenario=Scenario(
            incident=incident,
            # Both tracks alike, with errors: the tolerance keeps a healthy canary quiet.
            healthy={**s.traffic("stable", 1000, errors_per_step=1), **s.traffic("canary", 100, errors_per_step=0)},
            quiet_at=_before(canary.sustain_for),
            firing_at=_after(canary.sustain_for + timedelta(minutes=1)),
            labels={"service": s.service},
        ),
    )
