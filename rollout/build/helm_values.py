"""Helm values and monitoring custom resources for the Kubernetes stacks, as plain data.

Every key set here must exist in the chart's own default values (Helm ignores
an unknown key silently); tests/test_monitoring.py compares them
with the defaults in tests/reference/helm-values/.

Choices, and why:

- Alertmanager's configuration goes in the chart's ``alertmanager.config``, not
  an ``AlertmanagerConfig`` resource: the operator scopes an AlertmanagerConfig
  to its namespace by adding a ``namespace`` matcher to every route, which our
  rule-generated alerts do not carry, and it cannot hold inhibit rules across
  namespaces. The chart stores the config in a Secret.
- No Helm hooks: ``helm.v4.Chart`` applies hook resources as plain resources,
  so the admission webhooks (whose certificate patch jobs are hooks) and the
  operator's TLS are off. Rules are validated by promtool before they ship.
- The chart's default rules are off: the catalogue in alerts/ is the stack's
  whole set, every rule with the labels our routing and runbooks need;
  docs/operations.md lists the chart's groups this leaves off and why.
- Monitors, rules and probes carry ``release: <releaseName>``: the chart's
  Prometheus selects only those (``*SelectorNilUsesHelmValues: true``), and
  anything without the label is silently ignored. With an existing operator
  (``install: false``) they carry ``monitoring.existing.labels`` instead, and the
  routing goes in an ``AlertmanagerConfig`` (rollout/build/alertmanager_config.py),
  whose namespace matcher the stack's alerts satisfy: every rule carries the
  stack's namespace label (rollout/model/scope.py).
"""

from __future__ import annotations

from typing import Any

from rollout.model import conventions as c
from rollout.model import scope
from rollout.model.config import StackConfig
from rollout.model.durations import format_duration

#: Secret names the charts read; created by the monitoring component.
GRAFANA_ADMIN_SECRET = "rollout-grafana-admin"
#: The blackbox exporter chart names its objects after the release unless the
#: release name contains the chart's name; this release name makes them predictable.
BLACKBOX_RELEASE = "prometheus-blackbox-exporter"
#: The name of Grafana's Service port, set in the values so our monitor can rely on it.
GRAFANA_PORT_NAME = "http-web"


BLACKBOX_PORT = 9115


def blackbox_address(config: StackConfig) -> str:
    """The blackbox exporter the Probes use: an existing one's (``monitoring.existing.blackboxExporter``),
    else the one the stack runs (the chart's, or rollout.build.blackbox_objects' under the same name)."""
    if not config.monitoring.install and config.monitoring.existing.blackbox_exporter:
        return config.monitoring.existing.blackbox_exporter
    namespace = config.kubernetes.namespace if config.kubernetes else "default"
    return f"{BLACKBOX_RELEASE}.{namespace}.svc:{BLACKBOX_PORT}"


def pushgateway_name(config: StackConfig) -> str:
    return f"{config.monitoring.release_name}-pushgateway"
MONITORING_API = "monitoring.coreos.com/v1"


def job_relabeling(job: str) -> list[dict[str, str]]:
    """Relabelings that name a monitor's targets ``job``.

    The operator names a ServiceMonitor's job after the Service (here
    ``rollout-monitoring-prometheus`` and the like), but the alert catalogue
    and the Docker target's prometheus.yml match the conventions.JOB_* names;
    without this an alert on Prometheus' config reloads would never fire on
    Kubernetes. The operator appends these after its own relabelings, so they win.
    """
    return [{"targetLabel": "job", "replacement": job}]


def grafana_service_monitor(config: StackConfig) -> dict:
    """Scrapes the chart's Grafana as job ``grafana``.

    Ours, not the chart's: kube-prometheus-stack's own values offer only
    ``grafana.serviceMonitor.enabled``, and its relabelings live in the Grafana
    subchart, whose defaults the values test cannot check.
    """
    namespace = config.kubernetes.namespace if config.kubernetes else "default"
    return {
        "apiVersion": MONITORING_API,
        "kind": "ServiceMonitor",
        "metadata": {"name": f"{config.monitoring.release_name}-grafana", "namespace": namespace, "labels": release_labels(config)},
        "spec": {
            # The Grafana subchart labels its Service with the release it belongs to.
            "selector": {
                "matchLabels": {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": config.monitoring.release_name}
            },
            "endpoints": [
                {
                    "port": GRAFANA_PORT_NAME,
                    "path": "/metrics",
                    "interval": format_duration(config.monitoring.scrape_interval),
                    "relabelings": job_relabeling(c.JOB_GRAFANA),
                }
            ],
        },
    }


def release_labels(config: StackConfig) -> dict[str, str]:
    """The labels the operator's selectors require on monitors, probes and rules
    (``release: <releaseName>``, or ``monitoring.existing.labels`` with an existing operator)."""
    return config.selector_labels


def kube_prometheus_stack_values(config: StackConfig, alertmanager_config: Any) -> dict:
    """Values of kube-prometheus-stack. ``alertmanager_config`` is the built
    Alertmanager config (plain data, or a Pulumi secret Output when deployed)."""
    monitoring = config.monitoring
    prometheus_spec: dict[str, Any] = {
        "retention": format_duration(monitoring.retention),
        "scrapeInterval": format_duration(monitoring.scrape_interval),
        "evaluationInterval": format_duration(monitoring.evaluation_interval),
        # Select only what carries our release label (the chart's default).
        "ruleSelectorNilUsesHelmValues": True,
        "serviceMonitorSelectorNilUsesHelmValues": True,
        "podMonitorSelectorNilUsesHelmValues": True,
        "probeSelectorNilUsesHelmValues": True,
    }
    if monitoring.prometheus_resources:
        prometheus_spec["resources"] = monitoring.prometheus_resources.model_dump(by_alias=True)
    if monitoring.storage.persistent:
        claim: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": monitoring.storage.size}},
        }
        if monitoring.storage.storage_class:
            claim["storageClassName"] = monitoring.storage.storage_class
        prometheus_spec["storageSpec"] = {"volumeClaimTemplate": {"spec": claim}}
        if monitoring.storage.protect:
            # Keep the volume when the StatefulSet is deleted or scaled down.
            prometheus_spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain", "whenScaled": "Retain"}
    alertmanager_spec: dict[str, Any] = {"replicas": monitoring.alertmanager_replicas}
    if monitoring.alertmanager_resources:
        alertmanager_spec["resources"] = monitoring.alertmanager_resources.model_dump(by_alias=True)
    label, value = c.GRAFANA_DASHBOARD_LABEL
    return {
        # Object names start with the release name, whatever the chart's own name.
        "fullnameOverride": monitoring.release_name,
        # The CRD upgrade job runs as a Helm hook: off (the chart's default, said
        # explicitly so a future default cannot turn a hook on under us).
        "crds": {"enabled": True, "upgradeJob": {"enabled": False}},
        "defaultRules": {"create": False},
        "prometheusOperator": {
            "admissionWebhooks": {"enabled": False, "patch": {"enabled": False}},
            "tls": {"enabled": False},
        },
        "prometheus": {"prometheusSpec": prometheus_spec, "serviceMonitor": {"relabelings": job_relabeling(c.JOB_PROMETHEUS)}},
        "alertmanager": {
            "config": alertmanager_config,
            "alertmanagerSpec": alertmanager_spec,
            "serviceMonitor": {"relabelings": job_relabeling(c.JOB_ALERTMANAGER)},
        },
        "grafana": {
            # grafana_service_monitor() scrapes it instead, with our job name.
            "serviceMonitor": {"enabled": False},
            "service": {"portName": GRAFANA_PORT_NAME},
            "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": label,
                    "labelValue": value,
                    # Only the stack's own namespace: a dashboard ConfigMap any
                    # other tenant of the cluster labels would otherwise show up here.
                    "searchNamespace": config.kubernetes.namespace if config.kubernetes else None,
                    # A dashboard ConfigMap's folder annotation becomes a folder:
                    # each stack's dashboards in their own (components/dashboards.py).
                    "folderAnnotation": c.GRAFANA_FOLDER_ANNOTATION,
                    "provider": {"allowUiUpdates": False, "foldersFromFilesStructure": True},
                },
                # One owner per datasource uid: with monitoring.grafana.url set,
                # pulumiverse-grafana creates it through the API, and a provisioned
                # copy with the same uid would make that creation fail.
                "datasources": {
                    "enabled": True,
                    "defaultDatasourceEnabled": not monitoring.grafana.url,
                    "uid": c.GRAFANA_DATASOURCE_UID,
                },
            },
        },
        "nodeExporter": {"enabled": True},
        "prometheus-node-exporter": {"prometheus": {"monitor": {"relabelings": job_relabeling(c.JOB_NODE)}}},
    }


def pushgateway_values(config: StackConfig) -> dict:
    return {
        "fullnameOverride": pushgateway_name(config),
        "serviceMonitor": {
            "enabled": True,
            "namespace": config.kubernetes.namespace if config.kubernetes else "default",
            "additionalLabels": release_labels(config),
            # CI pushes with its own job label; keep it. The relabeling names
            # only the Pushgateway's own target (its `up` series).
            "honorLabels": True,
            "relabelings": job_relabeling(c.JOB_PUSHGATEWAY),
        }
    }


def blackbox_values(config: StackConfig) -> dict:
    return {
        "config": {
            "modules": {
                c.BLACKBOX_MODULE: {
                    "prober": "http",
                    "timeout": "5s",
                    "http": {"valid_http_versions": ["HTTP/1.1", "HTTP/2.0"], "preferred_ip_protocol": "ip4"},
                }
            }
        }
    }


def prometheus_rules(config: StackConfig, rule_files: dict[str, dict]) -> list[dict]:
    """One PrometheusRule per rules file (recording, and each category)."""
    namespace = config.kubernetes.namespace if config.kubernetes else "default"
    return [
        {
            "apiVersion": MONITORING_API,
            "kind": "PrometheusRule",
            "metadata": {"name": f"rollout-{name}", "namespace": namespace, "labels": release_labels(config)},
            "spec": {"groups": document["groups"]},
        }
        for name, document in sorted(rule_files.items())
    ]


def service_monitor(config: StackConfig, service: str) -> dict:
    """Scrapes both tracks' Services of one service, as job ``rollout-service``."""
    namespace = config.kubernetes.namespace if config.kubernetes else "default"
    return {
        "apiVersion": MONITORING_API,
        "kind": "ServiceMonitor",
        "metadata": {"name": f"{service}", "namespace": namespace, "labels": release_labels(config)},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": service}},
            "endpoints": [
                {
                    "port": "http",
                    "path": "/metrics",
                    "interval": format_duration(config.monitoring.scrape_interval),
                    "relabelings": [
                        {"targetLabel": "job", "replacement": c.JOB_SERVICE},
                        {"targetLabel": c.SERVICE_LABEL, "replacement": service},
                        {
                            "sourceLabels": ["__meta_kubernetes_service_label_rollout_dev_track"],
                            "targetLabel": c.TRACK_LABEL,
                        },
                    ],
                }
            ],
        },
    }


def probe(config: StackConfig, service: str, track: str, url: str) -> dict:
    """A blackbox health check of one track, as job ``rollout-blackbox``."""
    namespace = config.kubernetes.namespace if config.kubernetes else "default"
    return {
        "apiVersion": MONITORING_API,
        "kind": "Probe",
        "metadata": {"name": f"{service}-{track}", "namespace": namespace, "labels": release_labels(config)},
        "spec": {
            "jobName": c.JOB_PROBE,
            "interval": format_duration(config.monitoring.scrape_interval),
            "module": c.BLACKBOX_MODULE,
            "prober": {"url": blackbox_address(config)},
            "targets": {
                "staticConfig": {
                    "static": [url],
                    # The operator adds the Probe's namespace too; said here so that the
                    # stack's scope (rollout.model.scope) does not rest on that default.
                    "labels": {**scope.labels(config), c.SERVICE_LABEL: service, c.TRACK_LABEL: track},
                }
            },
        },
    }
