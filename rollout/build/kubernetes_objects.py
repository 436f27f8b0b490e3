"""Every object a Kubernetes stack declares, as plain data: the one builder both
the components (which declare them) and ``rollout render`` (which writes them)
read, so what a reviewer sees in the rendered folder is what ``pulumi up`` applies.

- :func:`charts`: the Helm charts (kube-prometheus-stack, the blackbox exporter,
  the Pushgateway) with their release names and values;
- :func:`monitoring_documents`: PrometheusRules, ServiceMonitors, Probes, and with an
  existing operator the routing's AlertmanagerConfig (rollout.build.alertmanager_config,
  whose Secret it references is built there too) and a blackbox exporter
  (rollout.build.blackbox_objects);
- :func:`grafana_admin_secret`, :func:`flags_config_map`,
  :func:`dashboard_config_map`, :func:`namespace`: the plain objects;
- rollout.build.traffic: each service's Deployments, Services, PodDisruptionBudgets, HTTPRoute.

Values that are secrets (the Alertmanager credentials, Grafana's admin password)
are arguments: the program passes Pulumi secret Outputs, ``render`` passes
placeholders (conventions.SECRET_PLACEHOLDER).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollout.model import conventions as c
from rollout.model import versions
from rollout.model.config import StackConfig
from rollout.build.alertmanager_config import alertmanager_config_resource
from rollout.build.helm_values import (
    BLACKBOX_RELEASE,
    GRAFANA_ADMIN_SECRET,
    blackbox_values,
    grafana_service_monitor,
    kube_prometheus_stack_values,
    probe,
    prometheus_rules,
    pushgateway_values,
    service_monitor,
)


@dataclass(frozen=True)
class ChartSpec:
    """One Helm chart as the program installs it."""

    #: The key of versions.CHARTS, also the component's kind.
    key: str
    kind: str
    chart: str
    version: str
    release: str
    values: Any


def labels() -> dict[str, str]:
    """The labels on every plain object rollout declares."""
    return dict([c.MANAGED_BY_LABEL, c.PART_OF_LABEL])


def charts(config: StackConfig, alertmanager_config: Any) -> list[ChartSpec]:
    """The charts of the monitoring stack (none when ``monitoring.install`` is false)."""
    if not config.monitoring.install:
        return []
    release = config.monitoring.release_name
    specs = []
    for key, kind, name, values in (
        ("kube-prometheus-stack", "KubePrometheusStack", release, kube_prometheus_stack_values(config, alertmanager_config)),
        ("prometheus-blackbox-exporter", "BlackboxExporter", BLACKBOX_RELEASE, blackbox_values(config)),
        ("prometheus-pushgateway", "Pushgateway", f"{release}-pushgateway", pushgateway_values(config)),
    ):
        chart, version = versions.CHARTS[key]
        specs.append(ChartSpec(key, kind, chart, version, name, values))
    return specs


def monitoring_documents(config: StackConfig, rule_files: dict[str, dict]) -> list[dict]:
    """Our rules, monitors and probes (custom resources of the Prometheus operator) and, with
    an existing operator, the routing as its ``AlertmanagerConfig``."""
    documents = prometheus_rules(config, rule_files)
    if not config.monitoring.install:
        documents.append(alertmanager_config_resource(config))
    if config.monitoring.install:
        # An existing install's Grafana is scraped (or not) by that install.
        documents.append(grafana_service_monitor(config))
    for service in config.services:
        documents.append(service_monitor(config, service.name))
        for track in c.TRACKS:
            if track == c.CANARY and service.canary_idle:
                continue  # promoted: the canary runs no pods until the next release (rollout.build.traffic)
            url = f"http://{service.name}-{track}.{config.kubernetes.namespace}.svc:{service.port}{service.health.path}"
            documents.append(probe(config, service.name, track, url))
    return documents


def namespace(config: StackConfig) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": config.kubernetes.namespace, "labels": labels()}}


def grafana_admin_secret(config: StackConfig, password: Any) -> dict:
    """The Secret Grafana's admin credentials come from (the chart's ``admin.existingSecret``)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": GRAFANA_ADMIN_SECRET, "namespace": config.kubernetes.namespace},
        "type": "Opaque",
        "stringData": {"admin-user": "admin", "admin-password": password},
    }


def flags_config_map(namespace: Any, document: str, extra_labels: dict[str, str] | None = None) -> dict:
    """The flag document as the ConfigMap services mount as a directory.

    ``namespace`` is the stack's namespace (a Pulumi Input when declared)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": c.FLAGS_CONFIGMAP,
            "namespace": namespace,
            "labels": {**labels(), **(extra_labels or {})},
            "annotations": {"rollout.dev/mount": f"directory at {c.FLAGS_MOUNT_DIR}, never subPath"},
        },
        "data": {c.FLAGS_FILE_NAME: document},
    }


def dashboard_config_map(namespace: Any, folder: str, uid: str, text: str, extra_labels: dict[str, str] | None = None) -> dict:
    """One dashboard as a ConfigMap for the Grafana chart's sidecar, in the stack's folder."""
    label, value = c.GRAFANA_DASHBOARD_LABEL
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"dashboard-{uid}",
            "namespace": namespace,
            "labels": {**labels(), **(extra_labels or {}), label: value},
            "annotations": {c.GRAFANA_FOLDER_ANNOTATION: folder},
        },
        "data": {f"{uid}.json": text},
    }


def file_name(document: dict) -> str:
    """``<name>-<kind>.yaml``: unique within a stack's namespace."""
    return f"{document['metadata']['name']}-{document['kind'].lower()}.yaml"
