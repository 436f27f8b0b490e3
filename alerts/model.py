"""The shape of an alert and of the incident that proves it, kept beside each other.

Each alert carries a :class:`Scenario`: the series of an incident that must
fire it, the series of healthy traffic that must keep it quiet, and when it
fires. tests/test_alert_rules.py turns every scenario into a ``promtool test
rules`` case, so no alert exists without a test that can fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rollout.model import conventions


@dataclass(frozen=True)
class Scenario:
    """An incident for ``promtool test rules``, sampled every ``interval``.

    ``incident`` and ``healthy`` map series selectors (``metric{labels}``) to
    promtool's expanding notation (``0+100x60``). The alert must be quiet at
    ``quiet_at`` (before its ``for`` has passed), firing at ``firing_at`` with
    ``labels`` beside the rule's own, and quiet throughout ``healthy``.
    """

    incident: dict[str, str]
    healthy: dict[str, str]
    quiet_at: str
    firing_at: str
    labels: dict[str, str] = field(default_factory=dict)
    #: Sampling interval of the series.
    interval: str = "15s"
    #: Fires on healthy traffic too (the watchdog).
    always: bool = False
    #: The incident is a safety flag switched on in the stack config, not a series.
    safety_flag_on: str | None = None


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    priority: str
    category: str
    summary: str
    description: str
    scenario: Scenario
    labels: dict[str, str] = field(default_factory=dict)
    rollback: bool = False
    #: Watches a component of the monitoring stack itself (Prometheus, Alertmanager,
    #: the Pushgateway's CI results, node-exporter), not the stack's services: left
    #: out with an operator already in the cluster, whose owner watches those.
    own_monitoring: bool = False

    def __post_init__(self) -> None:
        # The catalogue's own invariants; a broken builder fails at import of the stack.
        assert self.severity in conventions.SEVERITIES, self
        assert self.priority in conventions.PRIORITIES, self
        assert conventions.SEVERITY_OF_PRIORITY[self.priority] == self.severity, (
            f"{self.name}: severity {self.severity} disagrees with priority {self.priority}"
        )
        assert self.category in conventions.CATEGORIES, self
        assert self.name[:1].isupper() and self.name.isalnum(), self.name

    def rule(self, runbook_base_url: str) -> dict:
        """The Prometheus alerting rule, ``alert`` first."""
        labels = {
            "severity": self.severity,
            "priority": self.priority,
            "category": self.category,
            **self.labels,
        }
        if self.rollback:
            labels[conventions.ROLLBACK_LABEL] = "true"
        rule = {"alert": self.name, "expr": self.expr}
        if self.for_ != "0s":
            rule["for"] = self.for_
        rule["labels"] = dict(sorted(labels.items()))
        rule["annotations"] = {
            "description": self.description,
            "runbook_url": f"{runbook_base_url.rstrip('/')}/{self.name}.md",
            "summary": self.summary,
        }
        return rule


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)

    def rule(self) -> dict:
        rule = {"record": self.record, "expr": self.expr}
        if self.labels:
            rule["labels"] = dict(sorted(self.labels.items()))
        return rule


def le_matcher(seconds: float) -> str:
    """A regex for the ``le`` label of a bucket boundary, as either client writes it.

    Go clients write 1 and 0.2, Python clients 1.0 and 0.2: match both.
    """
    text = f"{seconds:g}".replace(".", "\\\\.")
    return f"{text}0*" if "." in f"{seconds:g}" else f"{text}(\\\\.0+)?"


def ratio(value: float) -> str:
    """A threshold as PromQL text, without float noise (0.1 + 0.2 stays 0.3)."""
    return f"{round(value, 9):g}"
