"""Deployment: the canary's health checks and traffic, config reloads, CI results."""

from __future__ import annotations

from datetime import timedelta

from alerts.model import Alert, Scenario, ratio
from alerts.series import Series, scoped
from rollout.model import conventions as c
from rollout.model.config import StackConfig
from rollout.model.scope import select
from rollout.model.durations import format_duration


CI_JOB = f'job="{c.CI_PUSH_JOB}"'


def alerts(config: StackConfig) -> list[Alert]:
    s = Series(config)
    checks = config.canary.max_consecutive_failed_health_checks
    interval = config.monitoring.scrape_interval
    # N checks at one per scrape interval, minus a second so that the range
    # (inclusive at both ends) holds exactly N samples.
    window = format_duration(checks * interval - timedelta(seconds=1))
    probe = select(config, config.metrics.probe_success, f'job="{c.JOB_PROBE}"', f'{c.TRACK_LABEL}="{c.CANARY}"')
    healthy_probes = {s.probe("stable"): "1x40", s.probe("canary"): "1x40"}
    steps_ok = 9  # the canary answers the first 10 checks, then fails every one
    rules = [
        Alert(
            name="CanaryHealthChecksFailing",
            expr=f"(max_over_time({probe}[{window}]) == 0)\nand\n(count_over_time({probe}[{window}]) >= {checks})",
            for_="0s",
            severity="critical",
            priority="P1",
            category="deployment",
            summary="Canary of {{ $labels.service }} failed " + str(checks) + " health checks in a row",
            description=f"The blackbox probe of {{{{ $labels.instance }}}} failed {checks} consecutive checks: roll the canary back.",
            rollback=True,
            scenario=Scenario(
                incident={s.probe("stable"): "1x40", s.probe("canary"): f"1x{steps_ok} 0x30"},
                healthy=healthy_probes,
                interval=format_duration(interval),
                quiet_at=format_duration((steps_ok + checks - 1) * interval),
                firing_at=format_duration((steps_ok + checks) * interval),
                labels={
                    "job": c.JOB_PROBE,
                    "service": s.service,
                    "track": c.CANARY,
                    "instance": f"http://{s.service}-canary:8080/healthz",
                },
            ),
        ),
        Alert(
            name="PrometheusConfigReloadFailed",
            own_monitoring=True,
            expr=f"{select(config, 'prometheus_config_last_reload_successful')} == 0",
            for_="5m",
            severity="warning",
            priority="P3",
            category="deployment",
            summary="Prometheus {{ $labels.instance }} runs an old config",
            description="The last config reload of Prometheus {{ $labels.instance }} failed; it keeps the previous config until a valid one is loaded.",
            scenario=_gauge(config, "prometheus_config_last_reload_successful", c.JOB_PROMETHEUS, "prometheus:9090", "0", "1"),
        ),
        Alert(
            name="AlertmanagerConfigReloadFailed",
            own_monitoring=True,
            expr=f"{select(config, 'alertmanager_config_last_reload_successful')} == 0",
            for_="5m",
            severity="warning",
            priority="P3",
            category="deployment",
            summary="Alertmanager {{ $labels.instance }} runs an old config",
            description="The last config reload of Alertmanager {{ $labels.instance }} failed; routing changes are not in effect.",
            scenario=_gauge(config, "alertmanager_config_last_reload_successful", c.JOB_ALERTMANAGER, "alertmanager:9093", "0", "1"),
        ),
        Alert(
            name="CITestPassRatioLow",
            own_monitoring=True,
            expr=f'{select(config, c.CI_PASS_RATIO, CI_JOB)} < {ratio(config.slo.ci_pass_ratio)}',
            for_="1m",
            severity="warning",
            priority="P3",
            category="deployment",
            summary="CI suite {{ $labels.suite }} passes too few tests",
            description=f"The last CI run pushed a pass ratio below {format(config.slo.ci_pass_ratio, '.0%')} for suite {{{{ $labels.suite }}}}.",
            scenario=Scenario(
                incident={_ci(config, "suite", "unit"): "0.95x20"},
                healthy={_ci(config, "suite", "unit"): "1x20"},
                quiet_at="30s",
                firing_at="2m",
                labels={"job": c.CI_PUSH_JOB, "suite": "unit"},
            ),
        ),
        Alert(
            name="CIResultsStale",
            own_monitoring=True,
            expr=f"time() - max by (job) ({select(config, 'push_time_seconds', CI_JOB)}) > 86400",
            for_="1h",
            severity="info",
            priority="P4",
            category="deployment",
            summary="No CI results for a day",
            description="CI has pushed no test results to the Pushgateway for over 24 hours; CITestPassRatioLow is blind.",
            scenario=Scenario(
                incident={scoped(config, "push_time_seconds", job=c.CI_PUSH_JOB): "0x320"},
                healthy={scoped(config, "push_time_seconds", job=c.CI_PUSH_JOB): "0+300x320"},
                # At most the 5 m lookback apart, so the series never goes missing
                # between samples and resets the alert's for.
                interval="5m",
                quiet_at="24h30m",
                firing_at="26h",
                labels={"job": c.CI_PUSH_JOB},
            ),
        ),
    ]
    for service in config.services:
        if service.rollout.weight > 0:
            # The rule exists only while the canary should get traffic.
            rules.append(_no_traffic(config, service.name, service.rollout.weight))
    return rules


def _no_traffic(config: StackConfig, service: str, weight: int) -> Alert:
    s = Series(config, service)
    selector = select(config, c.REQUEST_RATE, f'{c.SERVICE_LABEL}="{service}"', f'{c.TRACK_LABEL}="{c.CANARY}"')
    idle_canary = {**s.traffic("stable", 100), s.requests("canary"): "100x100", s.requests("canary", "500"): "0x100"}
    return Alert(
        name="CanaryNoTraffic",
        expr=f"(sum by ({c.SERVICE_LABEL}, {c.TRACK_LABEL}) ({selector}) == 0)\nor\nabsent({selector})",
        for_="10m",
        severity="warning",
        priority="P2",
        category="deployment",
        summary="Canary of {{ $labels.service }} gets no traffic",
        description=(
            f"The canary's traffic weight is {weight} %, but it has served no requests for 10 minutes: "
            "check the HTTPRoute and the canary's pods."
        ),
        scenario=Scenario(
            incident=idle_canary,
            healthy={**s.traffic("stable", 100), **s.traffic("canary", 100)},
            quiet_at="9m",
            firing_at="12m",
            labels={"service": service, "track": c.CANARY},
        ),
    )


def _ci(config: StackConfig, key: str, value: str) -> str:
    return scoped(config, c.CI_PASS_RATIO, job=c.CI_PUSH_JOB, **{key: value})


def _gauge(config: StackConfig, metric: str, job: str, instance: str, bad: str, good: str) -> Scenario:
    series = scoped(config, metric, instance=instance, job=job)
    return Scenario(
        incident={series: f"{bad}x40"},
        healthy={series: f"{good}x40"},
        quiet_at="4m",
        firing_at="6m",
        labels={"job": job, "instance": instance},
    )
