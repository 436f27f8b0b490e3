"""How a stack plugs into a Prometheus Operator already running in the cluster.

``rollout:monitoring.existing``, used with ``monitoring.install: false``.
"""

from __future__ import annotations

from typing import Literal

from rollout.model.config.fields import DnsLabel, HostPort, LabelKey, LabelValue, Model


class ExistingMonitoringSettings(Model):
    """How the stack plugs into a Prometheus Operator already running in the cluster
    (``monitoring.install: false``), e.g. a kube-prometheus-stack the platform team runs.

    The stack then deploys only what is its own: its PrometheusRules, ServiceMonitors and
    Probes, its routing as an ``AlertmanagerConfig`` (with its credentials in a Secret), and a
    blackbox exporter for its Probes. docs/operations.md says what the existing Prometheus and
    Alertmanager must select and how to check it.
    """

    labels: dict[LabelKey, LabelValue] | None = None
    """Labels put on the stack's PrometheusRules, ServiceMonitors, Probes and AlertmanagerConfig,
    so that the existing operator's selectors (``ruleSelector``, ``serviceMonitorSelector``,
    ``probeSelector``, ``alertmanagerConfigSelector``) pick them up. Unset: ``release:
    <monitoring.releaseName>``, which kube-prometheus-stack's Prometheus selects by default.
    """
    namespace: DnsLabel = "monitoring"
    """Namespace the existing Prometheus and Alertmanager run in: the relay's NetworkPolicy lets
    their pods in from there.
    """
    matcher_strategy: Literal["OnNamespace", "None"] = "OnNamespace"
    """The existing Alertmanager's ``alertmanagerConfigMatcherStrategy.type``. ``OnNamespace`` (the
    operator's default) adds a ``namespace="<this stack's namespace>"`` matcher to the stack's
    routes and inhibit rules, so they see only the stack's own alerts (every rule of the stack
    carries its namespace label). ``None`` adds nothing; set it only if the Alertmanager does so.
    """
    blackbox_exporter: HostPort | None = None
    """``host:port`` of a blackbox exporter already running (with an ``http_2xx`` module) that
    the stack's Probes use. Unset: the program deploys one in the stack's namespace.
    """
