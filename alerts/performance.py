"""Performance: the P95 latency SLO, the canary's latency rollback triggers, rule cost."""

from __future__ import annotations

from datetime import timedelta

from alerts.burnrate import burn_rate_alerts
from alerts.model import Alert, Scenario, ratio
from alerts.series import Series, scoped
from rollout.model import conventions as c
from rollout.model.config import StackConfig
from rollout.model.scope import select
from rollout.model.durations import format_duration

#: The P95 objective lets 5 % of requests be slower than it: that is the budget.
P95_BUDGET = 0.05


CANARY, STABLE = (f'{c.TRACK_LABEL}="{track}"' for track in (c.CANARY, c.STABLE))


def alerts(config: StackConfig) -> list[Alert]:
    s = Series(config)
    canary = config.canary
    sustain = format_duration(canary.sustain_for)
    fast = {**s.latency("stable", 100, None), **s.latency("canary", 100, None)}
    rules = [
        Alert(
            name="CanaryLatencyP95High",
            expr=f'{select(config, c.LATENCY_P95, CANARY)} > {ratio(canary.max_latency_p95_seconds)}',
            for_=sustain,
            severity="critical",
            priority="P1",
            category="performance",
            summary="Canary of {{ $labels.service }} is slow (P95)",
            description=(
                f"The canary's P95 latency has been above {ratio(canary.max_latency_p95_seconds)} s for {sustain}: "
                "roll the canary back."
            ),
            rollback=True,
            scenario=Scenario(
                incident={**s.latency("stable", 100, None), **s.latency("canary", 100, "1")},
                healthy=fast,
                quiet_at=_before(canary.sustain_for),
                firing_at=_after(canary.sustain_for),
                labels={"service": s.service, "track": c.CANARY},
            ),
        ),
        Alert(
            name="CanaryLatencyP99High",
            expr=f'{select(config, c.LATENCY_P99, CANARY)} > {ratio(canary.max_latency_p99_seconds)}',
            for_=sustain,
            severity="critical",
            priority="P1",
            category="performance",
            summary="Canary of {{ $labels.service }} is slow (P99)",
            description=(
                f"The canary's P99 latency has been above {ratio(canary.max_latency_p99_seconds)} s for {sustain}: "
                "roll the canary back."
            ),
            rollback=True,
            scenario=Scenario(
                incident={**s.latency("stable", 100, None), **s.latency("canary", 100, "2.5")},
                healthy=fast,
                quiet_at=_before(canary.sustain_for),
                firing_at=_after(canary.sustain_for),
                labels={"service": s.service, "track": c.CANARY},
            ),
        ),
        Alert(
            name="ServiceLatencyP99High",
            expr=f'{select(config, c.LATENCY_P99, STABLE)} > {ratio(canary.max_latency_p99_seconds)}',
            for_="10m",
            severity="warning",
            priority="P3",
            category="performance",
            summary="Stable track of {{ $labels.service }} is slow (P99)",
            description=(
                f"The stable track's P99 latency has been above {ratio(canary.max_latency_p99_seconds)} s for 10 minutes; "
                "the canary's budget would refuse this."
            ),
            scenario=Scenario(
                incident={**s.latency("stable", 100, "2.5"), **s.latency("canary", 100, None)},
                healthy=fast,
                quiet_at="9m",
                firing_at="12m",
                labels={"service": s.service, "track": c.STABLE},
            ),
        ),
        Alert(
            name="PrometheusRuleEvaluationSlow",
            own_monitoring=True,
            expr=(
                f"{select(config, 'prometheus_rule_group_last_duration_seconds')} > 0.8 * "
                f"{select(config, 'prometheus_rule_group_interval_seconds')}"
            ),
            for_="15m",
            severity="warning",
            priority="P3",
            category="performance",
            summary="Rule group {{ $labels.rule_group }} takes most of its interval",
            description="Evaluating {{ $labels.rule_group }} takes over 80 % of its interval; evaluations will be skipped and alerts delayed.",
            scenario=Scenario(
                incident={_rule_group(config, "last_duration"): "20x80", _rule_group(config, "interval"): "15x80"},
                healthy={_rule_group(config, "last_duration"): "0.05x80", _rule_group(config, "interval"): "15x80"},
                quiet_at="14m",
                firing_at="16m",
                labels={"job": c.JOB_PROMETHEUS, "instance": "prometheus:9090", "rule_group": "rollout-sli"},
            ),
        ),
    ]
    if config.monitoring.catalogue == "full":
        rules += burn_rate_alerts(
            config,
            slo_name="Latency",
            series=c.SLOW_RATIO_OVER,
            budget=P95_BUDGET,
            category="performance",
            what=f"requests slower than {ratio(config.slo.latency_p95_seconds)} s",
            incident={**s.latency("stable", 100, "1", steps=120), **s.latency("canary", 100, "1", steps=120)},
            slow_burn_incident={**s.latency("stable", 100, None, steps=120), **s.latency("canary", 100, "1", steps=120)},
            healthy={**s.latency("stable", 100, None, steps=120), **s.latency("canary", 100, None, steps=120)},
        )
    return rules


def _rule_group(config: StackConfig, what: str) -> str:
    return scoped(
        config, f"prometheus_rule_group_{what}_seconds", instance="prometheus:9090", job=c.JOB_PROMETHEUS, rule_group="rollout-sli"
    )


def _before(sustain) -> str:
    """An evaluation time inside the pending period (the 5-minute rate needs a minute to settle)."""
    return format_duration(sustain)


def _after(sustain) -> str:
    return format_duration(sustain + timedelta(minutes=2))
