"""Availability: the service and the monitoring stack up, and the availability SLO."""

from __future__ import annotations

from alerts.burnrate import burn_rate_alerts
from alerts.model import Alert, Scenario
from alerts.series import Series, scoped
from rollout.model import conventions as c
from rollout.model.config import StackConfig
from rollout.model.scope import select


SERVICE_JOB = f'job="{c.JOB_SERVICE}"'


def alerts(config: StackConfig) -> list[Alert]:
    s = Series(config)
    service = s.service
    grafana_up = scoped(config, "up", instance="grafana:3000", job=c.JOB_GRAFANA)
    rules = [
        Alert(
            name="ServiceDown",
            expr=f'max by ({c.SERVICE_LABEL}) ({select(config, "up", SERVICE_JOB)}) == 0',
            # One minute: long enough to ride out a single failed scrape, short
            # enough that a total outage pages within two.
            for_="1m",
            severity="critical",
            priority="P0",
            category="availability",
            summary="{{ $labels.service }} is down",
            description="No instance of {{ $labels.service }} (stable or canary) has answered a scrape for 1 minute.",
            scenario=Scenario(
                incident={s.up("stable"): "0x20", s.up("canary"): "0x20"},
                healthy={s.up("stable"): "1x20", s.up("canary"): "0x20"},
                quiet_at="45s",
                firing_at="1m15s",
                labels={"service": service},
            ),
        ),
        Alert(
            name="ScrapeTargetDown",
            expr=f"{select(config, 'up')} == 0",
            for_="5m",
            severity="warning",
            priority="P3",
            category="availability",
            summary="Scrape target {{ $labels.instance }} of job {{ $labels.job }} is down",
            description="Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for 5 minutes.",
            scenario=Scenario(
                incident={grafana_up: "0x40"},
                healthy={grafana_up: "1x40"},
                quiet_at="4m",
                firing_at="6m",
                labels={"job": c.JOB_GRAFANA, "instance": "grafana:3000"},
            ),
        ),
        Alert(
            name="Watchdog",
            expr="vector(1)",
            for_="0s",
            severity="info",
            priority="P4",
            category="availability",
            summary="The alerting pipeline is alive",
            description=(
                "Always firing. If it stops arriving, Prometheus, Alertmanager or the "
                "route between them is broken."
            ),
            scenario=Scenario(incident={}, healthy={}, quiet_at="0s", firing_at="1m", always=True),
        ),
        Alert(
            name="PrometheusNotificationsFailing",
            own_monitoring=True,
            expr=f"rate({select(config, 'prometheus_notifications_errors_total')}[5m]) > 0",
            for_="10m",
            severity="warning",
            priority="P2",
            category="availability",
            summary="Prometheus fails to send alerts to {{ $labels.alertmanager }}",
            description="Prometheus {{ $labels.instance }} has failed to deliver alerts to {{ $labels.alertmanager }} for 10 minutes; alerts may not reach anyone.",
            scenario=Scenario(
                incident={_am_errors(config): "0+1x80"},
                healthy={_am_errors(config): "0x80"},
                quiet_at="9m",
                firing_at="12m",
                labels={"job": c.JOB_PROMETHEUS, "instance": "prometheus:9090", "alertmanager": "http://alertmanager:9093/api/v2/alerts"},
            ),
        ),
        Alert(
            name="PrometheusRuleEvaluationFailures",
            own_monitoring=True,
            expr=f"increase({select(config, 'prometheus_rule_evaluation_failures_total')}[5m]) > 0",
            for_="5m",
            severity="warning",
            priority="P3",
            category="availability",
            summary="Rules of group {{ $labels.rule_group }} fail to evaluate",
            description="Prometheus {{ $labels.instance }} failed to evaluate rules of {{ $labels.rule_group }} over the last 5 minutes; alerts and SLIs of that group are blind.",
            scenario=Scenario(
                incident={_rule_failures(config): "0+1x60"},
                healthy={_rule_failures(config): "0x60"},
                quiet_at="4m",
                firing_at="7m",
                labels={"job": c.JOB_PROMETHEUS, "instance": "prometheus:9090", "rule_group": "rollout-errors"},
            ),
        ),
        Alert(
            name="PrometheusTSDBCompactionsFailing",
            own_monitoring=True,
            expr=f"increase({select(config, 'prometheus_tsdb_compactions_failed_total')}[3h]) > 0",
            for_="0s",
            severity="warning",
            priority="P3",
            category="availability",
            summary="Prometheus {{ $labels.instance }} fails to compact its storage",
            description="A TSDB compaction of Prometheus {{ $labels.instance }} failed in the last 3 hours; disk use will grow and queries slow down.",
            scenario=Scenario(
                incident={_compactions(config): "0x20 1x20"},
                healthy={_compactions(config): "0x40"},
                quiet_at="4m",
                firing_at="6m",
                labels={"job": c.JOB_PROMETHEUS, "instance": "prometheus:9090"},
            ),
        ),
    ]
    if config.monitoring.catalogue == "full":
        rules += burn_rate_alerts(
            config,
            slo_name="Availability",
            series=c.PROBE_FAILURE_RATIO_OVER,
            budget=1 - config.slo.availability,
            category="availability",
            what="failed health checks",
            incident={s.probe("stable"): "0x120", s.probe("canary"): "0x120"},
            slow_burn_incident={s.probe("stable"): "1x120", s.probe("canary"): "0x120"},
            healthy={s.probe("stable"): "1x120", s.probe("canary"): "1x120"},
        )
    return rules


def _am_errors(config: StackConfig) -> str:
    return scoped(
        config, "prometheus_notifications_errors_total",
        alertmanager="http://alertmanager:9093/api/v2/alerts", instance="prometheus:9090", job=c.JOB_PROMETHEUS,
    )


def _rule_failures(config: StackConfig) -> str:
    return scoped(
        config, "prometheus_rule_evaluation_failures_total",
        instance="prometheus:9090", job=c.JOB_PROMETHEUS, rule_group="rollout-errors",
    )


def _compactions(config: StackConfig) -> str:
    return scoped(config, "prometheus_tsdb_compactions_failed_total", instance="prometheus:9090", job=c.JOB_PROMETHEUS)
