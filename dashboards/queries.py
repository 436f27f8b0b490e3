"""The panels' PromQL vocabulary: the dashboard variables, the stack-scoped matchers and
the SLOs the dashboards chart, as plain data from the config (no Grafana SDK here)."""

from __future__ import annotations

from dataclasses import dataclass

from alerts.burnrate import PAGE, TICKET
from alerts.performance import P95_BUDGET as LATENCY_BUDGET
from rollout.model import conventions as c
from rollout.model import scope
from rollout.model.config import StackConfig
from rollout.model.durations import format_duration

#: Dashboard variables: one service, any of its tracks.
SERVICE_VAR = "service"
TRACK_VAR = "track"
SELECT = f'{c.SERVICE_LABEL}="${SERVICE_VAR}"'
SELECT_TRACK = f'{SELECT},{c.TRACK_LABEL}=~"${TRACK_VAR}"'


def _selects(config: StackConfig) -> tuple[str, str]:
    """The panels' matchers in the stack's scope (rollout.model.scope): the service, and the
    service and track. A Prometheus other stacks share holds their series of the same
    service name too."""
    prefix = "".join(f"{m}," for m in scope.matchers(config))
    return prefix + SELECT, prefix + SELECT_TRACK
#: Digits kept of every float in the JSON (thresholds, factors): no float noise.
FLOAT_DIGITS = 6


def _r(value: float) -> float:
    return round(float(value), FLOAT_DIGITS)


def _burn_windows() -> list[tuple[str, str]]:
    """(long, short) window pairs of the multi-window alerts, page first."""
    return [(w.long, w.short) for windows in (PAGE[0], TICKET[0]) for w in windows]


@dataclass(frozen=True)
class Slo:
    """One SLO as the dashboards show it: its budget of bad events and how to count them."""

    name: str
    #: The recorded bad-event ratio per window (a conventions name with ``{window}``).
    series: str
    #: Share of events that may be bad over the SLO window.
    budget: float
    objective: str
    #: Bad events over the whole SLO window, from the recorded 5-minute series.
    bad_over_window: str


def slos_of(config: StackConfig) -> list[Slo]:
    """The SLOs of alerts/burnrate.py's multi-window alerts, with the stack's objectives.

    Over the SLO window, errors and slow requests are counted like the recorded
    windows count them (bad over all, each moment weighed by its traffic);
    availability is the share of failed health checks.
    """
    select, select_track = _selects(config)
    slo = config.slo
    window = format_duration(slo.window)

    def over(rate: str) -> str:
        return f"sum_over_time({rate}{{{select}}}[{window}])"

    return [
        Slo(
            "Error rate", c.ERROR_RATIO_OVER, slo.error_ratio, f"errors below {slo.error_ratio:.2%}",
            f"{over(c.SERVICE_ERRORS_RATE)} / {over(c.SERVICE_REQUEST_RATE)}",
        ),
        Slo(
            # The latency SLO: at most 5 % of requests slower than the P95 objective.
            "Latency", c.SLOW_RATIO_OVER, LATENCY_BUDGET, f"95 % of requests within {slo.latency_p95_seconds:g} s",
            f"1 - {over(c.SERVICE_FAST_RATE)} / {over(c.SERVICE_DURATION_COUNT_RATE)}",
        ),
        Slo(
            "Availability", c.PROBE_FAILURE_RATIO_OVER, _r(1 - slo.availability), f"{slo.availability:.2%} of checks succeed",
            f"1 - avg_over_time({c.SERVICE_PROBE_SUCCESS}{{{select}}}[{window}])",
        ),
    ]


def _budget_left(slo: Slo) -> str:
    return f"1 - ({slo.bad_over_window}) / {_r(slo.budget)}"
