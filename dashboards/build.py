"""The stack's Grafana dashboards, built with Grafana's foundation SDK.

Four dashboards, every panel on the datasource ``conventions.GRAFANA_DATASOURCE_UID``:
the service overview, the canary against stable, the SLOs with their budgets
and burn rates, and the monitoring stack's own health. Panels read the recorded
SLIs (``alerts/recording.py``) rather than raw series, so a panel and an alert
always show the same number; thresholds come from the stack config (``canary``,
``slo``, ``monitoring.budgets``), so the lines drawn are the gates' and alerts'.

``dashboards(config, stack)`` returns ``{uid: dashboard JSON}``; ``dumps`` turns
one into the deterministic text that is rendered, provisioned and golden-tested.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

# The SDK warns at import that its v2 dashboard schema is preferred. We build the
# classic (v1) schema on purpose: Grafana 12 serves v2 only behind a feature
# toggle, while the chart's sidecar, file provisioning and the grafana provider's
# Dashboard resource all take the classic JSON.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from grafana_foundation_sdk.builders import common as gcb
    from grafana_foundation_sdk.builders import dashboard as gd
    from grafana_foundation_sdk.builders import prometheus as gp
    from grafana_foundation_sdk.builders import stat as gstat
    from grafana_foundation_sdk.builders import timeseries as gts
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import common as gc
    from grafana_foundation_sdk.models import dashboard as gm

from alerts.burnrate import PAGE, TICKET
from rollout.model import conventions as c
from rollout.model import scope
from rollout.model.config import StackConfig
from rollout.model.durations import format_duration

from dashboards.annotations import STAGE_TAG, stage_annotations  # noqa: F401 - stage_annotations: the program and render read it here
from dashboards.queries import (  # noqa: F401 - SERVICE_VAR and TRACK_VAR: the tests read them here
    FLOAT_DIGITS,
    SERVICE_VAR,
    TRACK_VAR,
    _budget_left,
    _burn_windows,
    _r,
    _selects,
    slos_of,
)

DATASOURCE = gc.DataSourceRef(type_val="prometheus", uid=c.GRAFANA_DATASOURCE_UID)
TAG = "rollout"
FIRING = '"firing"'

UID_OVERVIEW = "rollout-service-overview"
UID_ROLLOUT = "rollout-canary"
UID_SLOS = "rollout-slos"
UID_MONITORING = "rollout-monitoring-health"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    #: An instant query (stat panels); range otherwise.
    instant: bool = False


@dataclass(frozen=True)
class PanelSpec:
    title: str
    queries: list[Query]
    unit: str
    kind: str = "timeseries"  # or "stat"
    #: Threshold steps (value, colour) above the base colour, drawn as lines on time series.
    thresholds: list[tuple[float, str]] = field(default_factory=list)
    #: Base colour of the thresholds (below the first step).
    base: str = "green"
    description: str = ""
    width: int = 12
    height: int = 8
    minimum: float | None = None
    maximum: float | None = None


# --- the four dashboards ---------------------------------------------------------------


def service_overview(config: StackConfig) -> list[PanelSpec]:
    select, select_track = _selects(config)
    slo, canary = config.slo, config.canary
    window = format_duration(slo.window)
    error_budget = slo.error_ratio
    page_factor = PAGE[0][0].factor(slo.window)
    return [
        PanelSpec("Request rate", [Query(f"{c.REQUEST_RATE}{{{select_track}}}", "{{track}}")], "reqps"),
        PanelSpec(
            "Error ratio",
            [Query(f"{c.ERROR_RATIO}{{{select_track}}}", "{{track}}")],
            "percentunit",
            thresholds=[(slo.error_ratio, "orange"), (canary.max_error_ratio, "red")],
            description="5xx share per track; lines at the SLO's error ratio and the canary's rollback trigger.",
        ),
        PanelSpec(
            "Latency P50, P95, P99",
            [
                Query(f"{c.LATENCY_P50}{{{select_track}}}", "P50 {{track}}"),
                Query(f"{c.LATENCY_P95}{{{select_track}}}", "P95 {{track}}"),
                Query(f"{c.LATENCY_P99}{{{select_track}}}", "P99 {{track}}"),
            ],
            "s",
            thresholds=[
                (slo.latency_p95_seconds, "orange"),
                (canary.max_latency_p95_seconds, "red"),
                (canary.max_latency_p99_seconds, "dark-red"),
            ],
            description="Lines: the P95 objective, the canary's P95 and P99 rollback triggers.",
            width=24,
        ),
        PanelSpec(
            f"Availability over {window}",
            [Query(f"1 - avg_over_time({c.PROBE_FAILURE_RATIO_OVER.format(window='5m')}{{{select}}}[{window}])", "{{service}}", instant=True)],
            "percentunit",
            kind="stat",
            base="red",
            thresholds=[(slo.availability, "green")],
            description="Share of successful health checks over the SLO window, against the availability objective.",
            width=6,
        ),
        PanelSpec(
            f"Error budget left ({window})",
            [Query(_budget_left(slo), slo.name.lower(), instant=True) for slo in slos_of(config)],
            "percentunit",
            kind="stat",
            base="red",
            thresholds=[(0, "orange"), (0.25, "green")],
            width=6,
        ),
        PanelSpec(
            "Error burn rate (1h)",
            [Query(f"{c.ERROR_RATIO_OVER.format(window='1h')}{{{select}}} / {_r(error_budget)}", "{{service}}")],
            "x",
            thresholds=[(page_factor, "red")],
            description="How fast the error budget burns; 1 spends it exactly over the SLO window. The line is the page threshold.",
            width=6,
        ),
        PanelSpec(
            "CI test pass ratio",
            [Query(scope.select(config, c.CI_PASS_RATIO, f'job="{c.CI_PUSH_JOB}"'), "{{suite}}")],
            "percentunit",
            kind="stat",
            base="red",
            thresholds=[(slo.ci_pass_ratio, "green")],
            width=6,
        ),
        PanelSpec(
            "CPU per track",
            [Query(f"sum by ({c.TRACK_LABEL}) (rate({c.PROCESS_CPU_SECONDS}{{job=\"{c.JOB_SERVICE}\",{select_track}}}[5m]))", "{{track}}")],
            "short",
        ),
        PanelSpec(
            "Memory per track",
            [Query(f"sum by ({c.TRACK_LABEL}) ({c.PROCESS_RESIDENT_MEMORY}{{job=\"{c.JOB_SERVICE}\",{select_track}}})", "{{track}}")],
            "bytes",
        ),
        PanelSpec(
            "Alerts firing",
            [Query(f"count by (severity) ({scope.select(config, c.ALERTS, 'alertstate=' + FIRING)})", "{{severity}}")],
            "short",
            width=8,
        ),
        PanelSpec(
            "Rollout stage",
            [Query(f"{c.ROLLOUT_STAGE}{{{select}}}", "stage of the plan", instant=True)],
            "none",
            kind="stat",
            width=4,
        ),
        PanelSpec(
            "Canary weight",
            [Query(f"{c.ROLLOUT_WEIGHT}{{{select}}}", "canary weight", instant=True)],
            "percent",
            kind="stat",
            width=4,
        ),
        PanelSpec(
            "Time in stage",
            [Query(f"time() - {c.ROLLOUT_STAGE_STARTED}{{{select}}}", "{{service}}", instant=True)],
            "s",
            kind="stat",
            width=8,
        ),
    ]


def rollout(config: StackConfig) -> list[PanelSpec]:
    select, select_track = _selects(config)
    canary = config.canary
    failed_probe = f"{config.metrics.probe_success}{{{select_track}}}"
    checks = canary.max_consecutive_failed_health_checks
    # The last N checks at one per scrape interval, as CanaryHealthChecksFailing
    # counts them: the range (inclusive at both ends) less a second holds N samples.
    interval = format_duration(config.monitoring.scrape_interval * checks - timedelta(seconds=1))
    return [
        PanelSpec(
            "Error ratio: canary against stable",
            [Query(f"{c.ERROR_RATIO}{{{select_track}}}", "{{track}}")],
            "percentunit",
            thresholds=[(canary.max_error_ratio, "red")],
            description="The line is the gate and rollback threshold (rollout:canary.maxErrorRatio).",
            width=8,
        ),
        PanelSpec(
            "P95 latency: canary against stable",
            [Query(f"{c.LATENCY_P95}{{{select_track}}}", "{{track}}")],
            "s",
            thresholds=[(canary.max_latency_p95_seconds, "red")],
            width=8,
        ),
        PanelSpec(
            "P99 latency: canary against stable",
            [Query(f"{c.LATENCY_P99}{{{select_track}}}", "{{track}}")],
            "s",
            thresholds=[(canary.max_latency_p99_seconds, "red")],
            width=8,
        ),
        PanelSpec(
            "Canary traffic weight",
            [Query(f"{c.ROLLOUT_WEIGHT}{{{select}}}", "canary weight")],
            "percent",
            minimum=0,
            maximum=100,
        ),
        PanelSpec(
            f"Failed health checks (last {checks})",
            [Query(f"count_over_time({failed_probe}[{interval}]) - sum_over_time({failed_probe}[{interval}])", "{{track}}")],
            "short",
            thresholds=[(checks, "red")],
            description="Failed blackbox checks among the last ones; all of them failing is the rollback trigger.",
        ),
        PanelSpec(
            "Canary requests in range against the gate's minimum",
            [
                Query(
                    f'sum(increase({config.metrics.requests_total}{{{select},{c.TRACK_LABEL}="{c.CANARY}"}}[$__range]))',
                    "canary requests",
                    instant=True,
                )
            ],
            "short",
            kind="stat",
            base="red",
            thresholds=[(canary.min_requests, "green")],
            description="An advance needs at least rollout:canary.minRequests canary requests over the stage.",
            width=24,
        ),
    ]


def slos(config: StackConfig) -> list[PanelSpec]:
    select, select_track = _selects(config)
    slo = config.slo
    window = format_duration(slo.window)
    panels = []
    for entry in slos_of(config):
        name, series, budget, objective = entry.name, entry.series, entry.budget, entry.objective
        five = f"{series.format(window='5m')}{{{select}}}"
        panels += [
            PanelSpec(
                f"{name} SLI",
                [Query(f"1 - {five}", "{{service}}")],
                "percentunit",
                thresholds=[(_r(1 - budget), "green")],
                base="red",
                description=f"Objective: {objective}. The line is the objective.",
                width=8,
            ),
            PanelSpec(
                f"{name} budget left ({window})",
                [Query(_budget_left(entry), "{{service}}", instant=True)],
                "percentunit",
                kind="stat",
                base="red",
                thresholds=[(0, "orange"), (0.25, "green")],
                width=4,
            ),
            PanelSpec(
                f"{name} burn rates",
                [
                    Query(f"{series.format(window=w)}{{{select}}} / {_r(budget)}", w)
                    for pair in _burn_windows()
                    for w in pair
                ],
                "x",
                thresholds=sorted(
                    {(w.factor(slo.window), "orange" if severity == "warning" else "red") for windows, severity in ((PAGE[0], PAGE[1]), (TICKET[0], TICKET[1])) for w in windows}
                ),
                description="Budget burn per window of the multi-window alerts; lines at their factors.",
                width=12,
            ),
        ]
    panels.append(
        PanelSpec(
            "CI pass ratio SLI",
            [Query(scope.select(config, c.CI_PASS_RATIO, f'job="{c.CI_PUSH_JOB}"'), "{{suite}}")],
            "percentunit",
            base="red",
            thresholds=[(slo.ci_pass_ratio, "green")],
            width=24,
        )
    )
    return panels


def monitoring_health(config: StackConfig) -> list[PanelSpec]:
    budgets = config.monitoring.budgets
    return [
        PanelSpec("Scrape targets up", [Query(f"sum by (job) ({scope.select(config, c.UP)})", "{{job}} up"), Query(f"count by (job) ({scope.select(config, c.UP)})", "{{job}} targets")], "short"),
        PanelSpec(
            "Rule evaluation failures",
            [Query(f"sum by (rule_group) (increase({scope.select(config, c.PROMETHEUS_RULE_EVALUATION_FAILURES)}[5m]))", "{{rule_group}}")],
            "short",
            thresholds=[(1, "red")],
        ),
        PanelSpec(
            "Alertmanager notifications",
            [
                Query(f"sum by (integration) (rate({scope.select(config, c.ALERTMANAGER_NOTIFICATIONS)}[5m]))", "{{integration}} sent"),
                Query(f"sum by (integration) (rate({scope.select(config, c.ALERTMANAGER_NOTIFICATIONS_FAILED)}[5m]))", "{{integration}} failed"),
            ],
            "ops",
        ),
        PanelSpec(
            "Head series against the budget",
            [Query(f"max({scope.select(config, c.PROMETHEUS_HEAD_SERIES)})", "head series")],
            "short",
            thresholds=[(budgets.active_series, "red")],
            description="The line is rollout:monitoring.budgets.activeSeries (PrometheusActiveSeriesOverBudget).",
        ),
    ]


DASHBOARDS = {
    UID_OVERVIEW: ("Service overview", service_overview),
    UID_ROLLOUT: ("Rollout: canary against stable", rollout),
    UID_SLOS: ("SLOs and error budgets", slos),
    UID_MONITORING: ("Monitoring health", monitoring_health),
}


# --- rendering -------------------------------------------------------------------------


def _variables(config: StackConfig) -> list:
    services = [s.name for s in config.services]
    service = (
        gd.QueryVariable(SERVICE_VAR)
        .label("Service")
        .datasource(DATASOURCE)
        .query(f"label_values({scope.select(config, c.REQUEST_RATE)}, {c.SERVICE_LABEL})")
        .definition(f"label_values({scope.select(config, c.REQUEST_RATE)}, {c.SERVICE_LABEL})")
        .refresh(gm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(gm.VariableSort.ALPHABETICAL_ASC)
        .current(gm.VariableOption(text=services[0], value=services[0]))
    )
    track = (
        gd.CustomVariable(TRACK_VAR)
        .label("Track")
        .values(",".join(c.TRACKS))
        .multi(True)
        .include_all(True)
        .all_value("|".join(c.TRACKS))
        .current(gm.VariableOption(text="All", value="$__all"))
    )
    return [service, track]


def _panel(spec: PanelSpec, panel_id: int):
    builder = gts.Panel() if spec.kind == "timeseries" else gstat.Panel()
    builder = builder.id(panel_id).title(spec.title).datasource(DATASOURCE).unit(spec.unit).span(spec.width).height(spec.height)
    if spec.description:
        builder = builder.description(spec.description)
    if spec.minimum is not None:
        builder = builder.min(spec.minimum)
    if spec.maximum is not None:
        builder = builder.max(spec.maximum)
    steps = [gm.Threshold(value=None, color=spec.base)] + [gm.Threshold(value=_r(v), color=colour) for v, colour in spec.thresholds]
    builder = builder.thresholds(gd.ThresholdsConfig().mode(gm.ThresholdsMode.ABSOLUTE).steps(steps))
    if spec.kind == "stat":
        # A stat shows the latest value, coloured by the thresholds.
        builder = builder.reduce_options(gcb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)).color_mode(
            gc.BigValueColorMode.BACKGROUND
        )
    if spec.kind == "timeseries" and spec.thresholds:
        builder = builder.thresholds_style(gcb.GraphThresholdsStyleConfig().mode(gc.GraphThresholdsStyleMode.DASHED))
    for index, query in enumerate(spec.queries):
        target = gp.Dataquery().ref_id(chr(ord("A") + index)).expr(query.expr).legend_format(query.legend).datasource(DATASOURCE)
        target = target.instant() if query.instant else target.range()
        builder = builder.with_target(target)
    return builder


def build_dashboard(config: StackConfig, stack: str, uid: str) -> dict[str, Any]:
    title, panels = DASHBOARDS[uid]
    builder = (
        gd.Dashboard(f"{title} ({stack})")
        .uid(uid)
        .tags([TAG, stack])
        .description(c.GENERATED_HEADER.format(stack=stack))
        .time("now-6h", "now")
        .timezone("utc")
        .refresh("1m")
        .readonly()
    )
    for variable in _variables(config):
        builder = builder.with_variable(variable)
    # Panel ids follow the panels' order: stable across builds, unique per dashboard.
    for index, spec in enumerate(panels(config), start=1):
        builder = builder.with_panel(_panel(spec, index))
    document = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    if uid == UID_ROLLOUT:
        document["annotations"] = {"list": _stage_annotation_queries(config, stack)}
    return _normalise(document)


def _stage_annotation_queries(config: StackConfig, stack: str) -> list[dict]:
    """The canary dashboard's annotations: the history's stage changes (annotations the
    program creates through Grafana's API, found by tag), and each change of the
    canary weight Prometheus recorded (where Grafana's API is not managed)."""
    queries = [
        gm.AnnotationQuery(
            name="Rollout stages (history)",
            datasource=gc.DataSourceRef(type_val="grafana", uid="-- Grafana --"),
            enable=True,
            icon_color="blue",
            target=gm.AnnotationTarget(limit=100, match_any=False, tags=[STAGE_TAG, stack], type_val="tags"),
        ),
        gm.AnnotationQuery(
            name="Canary weight changes (Prometheus)",
            datasource=DATASOURCE,
            enable=True,
            icon_color="purple",
            expr=f"changes({c.ROLLOUT_WEIGHT}{{{_selects(config)[0]}}}[2m]) > 0",
            step="1m",
            title_format="canary weight changed",
            text_format=f"{{{{{c.SERVICE_LABEL}}}}}",
        ),
    ]
    return json.loads(json.dumps(queries, cls=JSONEncoder))


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, FLOAT_DIGITS)
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    return value


def dashboards(config: StackConfig, stack: str) -> dict[str, dict]:
    """Every dashboard of the stack by uid."""
    return {uid: build_dashboard(config, stack, uid) for uid in sorted(DASHBOARDS)}


def dumps(document: dict) -> str:
    """The deterministic JSON text of one dashboard."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
