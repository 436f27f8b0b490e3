"""Multi-window, multi-burn-rate SLO alerts.

From the Google SRE Workbook, "Alerting on SLOs" (multiwindow, multi-burn-rate
alerts): page when 2 % of the error budget burns in 1 h or 5 % in 6 h; open a
ticket when 10 % burns in 1 d or in 3 d. Each long window is paired with a short
one (1/12 of it) so the alert also stops soon after the burn stops. The burn-rate
factors follow from the stack's SLO window: factor = share of budget × window /
long window (14.4, 6, 3 and 1 for 30 days).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from alerts.model import Alert, Scenario, ratio
from rollout.model.config import StackConfig
from rollout.model.durations import parse_duration
from rollout.model.scope import select


@dataclass(frozen=True)
class BurnWindow:
    long: str
    short: str
    budget_share: float

    def factor(self, slo_window: timedelta) -> float:
        return round(self.budget_share * slo_window / parse_duration(self.long), 3)


#: (windows, severity, priority, for): the workbook's page and ticket pairs, as data.
PAGE = ((BurnWindow("1h", "5m", 0.02), BurnWindow("6h", "30m", 0.05)), "critical", "P1", "2m")
TICKET = ((BurnWindow("1d", "2h", 0.10), BurnWindow("3d", "6h", 0.10)), "warning", "P3", "15m")


def _expr(config: StackConfig, series: str, windows: tuple[BurnWindow, ...], budget: float, slo_window: timedelta) -> str:
    clauses = []
    for window in windows:
        threshold = ratio(window.factor(slo_window) * budget)
        clauses.append(
            f"(\n  {select(config, series.format(window=window.long))} > {threshold}\n"
            f"and\n  {select(config, series.format(window=window.short))} > {threshold}\n)"
        )
    return "\nor\n".join(clauses)


def burn_rate_alerts(
    config: StackConfig,
    *,
    slo_name: str,
    series: str,
    budget: float,
    category: str,
    what: str,
    incident: dict[str, str],
    slow_burn_incident: dict[str, str],
    healthy: dict[str, str],
) -> list[Alert]:
    """The page and the ticket alert of one SLO, with their scenarios."""
    window = config.slo.window
    service = config.services[0].name
    # "ErrorRate" -> "error rate", for the text people read.
    readable = re.sub(r"(?<!^)(?=[A-Z])", " ", slo_name).lower()
    out = []
    for (windows, severity, priority, for_), kind, scenario in (
        (PAGE, "Critical", Scenario(incident, healthy, quiet_at="1m", firing_at="3m", labels={"service": service})),
        (TICKET, "High", Scenario(slow_burn_incident, healthy, quiet_at="10m", firing_at="20m", labels={"service": service})),
    ):
        speeds = " or ".join(f"{w.factor(window):g}x over {w.long}" for w in windows)
        out.append(
            Alert(
                name=f"{slo_name}SLOBurnRate{kind}",
                expr=_expr(config, series, windows, budget, window),
                for_=for_,
                severity=severity,
                priority=priority,
                category=category,
                summary=f"{{{{ $labels.service }}}} burns its {readable} error budget fast"
                if kind == "Critical"
                else f"{{{{ $labels.service }}}} burns its {readable} error budget",
                description=(
                    f"{{{{ $labels.service }}}}'s share of {what} burns the {format(budget, '.2%')} budget of its "
                    f"{readable} SLO ({config.slo.window.days}-day window) at {speeds} the sustainable rate."
                ),
                scenario=scenario,
                # Shared by the page and the ticket of one SLO, so that the page
                # inhibits the ticket in Alertmanager.
                labels={"slo": slo_name.lower()},
            )
        )
    return out
