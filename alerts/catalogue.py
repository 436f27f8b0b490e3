"""The stack's whole rule catalogue: recording rules and alerts, by category.

``rule_groups`` is what Prometheus loads (and what the PrometheusRule CRs
carry); ``rule_files`` splits it into one file per category for rendering.
The ``full`` catalogue (staging, production) adds the SLO burn-rate alerts to
the development set.
"""

from __future__ import annotations

from dataclasses import replace

from alerts import availability, cost, deployment, errors, performance, recording, security
from alerts.model import Alert, Recording
from rollout.model import conventions, scope
from rollout.model.config import StackConfig

CATEGORY_BUILDERS = {
    "availability": availability.alerts,
    "performance": performance.alerts,
    "errors": errors.alerts,
    "deployment": deployment.alerts,
    "cost": cost.alerts,
    "security": security.alerts,
}
GROUP_PREFIX = "rollout-"


def installs_monitoring(config: StackConfig) -> bool:
    """Whether the stack runs its own Prometheus and Alertmanager (Docker, or ``monitoring.install``)."""
    return config.target == "docker" or config.monitoring.install


def alerts_of(config: StackConfig) -> dict[str, list[Alert]]:
    """Every alert of the stack, by category, in a stable order, with the
    stack's priority overrides (``rollout:alerting.priorities``) applied and
    its scope labels (rollout.model.scope) set. With an operator already in the
    cluster, the alerts on the monitoring stack's own components are left out."""
    overrides = config.alerting.priorities
    labels = scope.labels(config)
    own = installs_monitoring(config)
    return {
        category: [
            _scoped(replace(alert, priority=overrides[alert.name], severity=conventions.SEVERITY_OF_PRIORITY[overrides[alert.name]]) if alert.name in overrides else alert, labels)
            for alert in build(config)
            if own or not alert.own_monitoring
        ]
        for category, build in CATEGORY_BUILDERS.items()
    }


def _scoped(alert: Alert, labels: dict[str, str]) -> Alert:
    return replace(alert, labels={**labels, **alert.labels}) if labels else alert


def recordings(config: StackConfig, rules: list[Recording]) -> list[dict]:
    """Recording rules as Prometheus takes them, each writing the stack's scope labels."""
    labels = scope.labels(config)
    return [replace(r, labels={**labels, **r.labels}).rule() for r in rules]


def unknown_alert_names(config: StackConfig, names) -> list[str]:
    """The names among ``names`` that no alert of this stack has."""
    known = {alert.name for build in CATEGORY_BUILDERS.values() for alert in build(config)}
    return sorted(set(names) - known)


def all_alerts(config: StackConfig) -> list[Alert]:
    return [alert for alerts in alerts_of(config).values() for alert in alerts]


def rule_files(config: StackConfig) -> dict[str, dict]:
    """One rules document per file name (without .yaml): ``recording`` and each category."""
    interval = None  # every group evaluates at the global evaluation interval
    files = {
        "recording": {
            "groups": [
                _group("sli", recordings(config, recording.canary_slis(config) + recording.safety_flags(config) + recording.rollout_state(config)), interval),
                _group("slo", recordings(config, recording.slo_slis(config)), interval),
            ]
        }
    }
    base = config.alerting.runbook_base_url
    for category, alerts in alerts_of(config).items():
        if alerts:  # with an existing operator, the cost category watches only its Prometheus: none
            ahead = recordings(config, errors.trigger_counts(config)) if any(
                a.name == "CanaryWorseThanStable" for a in alerts) else []  # read in the same evaluation
            files[category] = {"groups": [_group(category, ahead + [a.rule(base) for a in alerts], interval)]}
    return files


def rule_groups(config: StackConfig) -> list[dict]:
    """Every rule group, as Prometheus (or a PrometheusRule's spec.groups) takes them."""
    return [group for document in rule_files(config).values() for group in document["groups"]]


def _group(name: str, rules: list[dict], interval: str | None) -> dict:
    group = {"name": f"{GROUP_PREFIX}{name}", "rules": rules}
    if interval:
        group["interval"] = interval
    return group
