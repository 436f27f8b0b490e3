"""prometheus.yml: scrape jobs, rule files and the Alertmanager to send to.

On the Docker target this is the live config: targets are the containers'
network aliases (conventions.DOCKER_HOSTS). On Kubernetes the Prometheus
Operator generates the live config from ServiceMonitors and Probes that carry
the same job names; the file rendered for those stacks is the equivalent
reference, addressed by cluster DNS names, so promtool can check the rules
against a real config and the end-to-end tests can run it.
"""

from __future__ import annotations

from rollout.model import conventions as c
from rollout.model import scope
from rollout.model.config import StackConfig
from rollout.model.durations import format_duration
from rollout.build.helm_values import blackbox_address, pushgateway_name

RULES_GLOB = "rules/*.yaml"


def _hosts(config: StackConfig) -> dict[str, str]:
    """host:port of each monitoring component for the stack's target."""
    if config.target == "docker":
        return {name: f"{host}:{port}" for name, (host, port) in c.DOCKER_HOSTS.items()}
    namespace = config.kubernetes.namespace if config.kubernetes else "default"
    release = config.monitoring.release_name
    return {
        # The operator's governing services for its StatefulSets.
        "prometheus": f"prometheus-operated.{namespace}.svc:9090",
        "alertmanager": f"alertmanager-operated.{namespace}.svc:9093",
        "grafana": f"{release}-grafana.{namespace}.svc:80",
        "pushgateway": f"{pushgateway_name(config)}.{namespace}.svc:9091",
        "node-exporter": f"{release}-prometheus-node-exporter.{namespace}.svc:9100",
        "blackbox-exporter": blackbox_address(config),
    }


def service_host(config: StackConfig, service: str, track: str, port: int) -> str:
    if config.target == "docker":
        return f"{service}-{track}:{port}"
    namespace = config.kubernetes.namespace if config.kubernetes else "default"
    return f"{service}-{track}.{namespace}.svc:{port}"


def prometheus_config(config: StackConfig, stack: str) -> dict:
    hosts = _hosts(config)
    # Every target in the stack's scope, as the operator labels its targets (rollout.model.scope).
    scoped = scope.labels(config)
    services = [
        {
            "targets": [service_host(config, service.name, track, service.port)],
            "labels": {**scoped, c.SERVICE_LABEL: service.name, c.TRACK_LABEL: track},
        }
        for service in config.services
        for track in c.TRACKS
    ]
    probes = [
        {
            "targets": [f"http://{service_host(config, service.name, track, service.port)}{service.health.path}"],
            "labels": {**scoped, c.SERVICE_LABEL: service.name, c.TRACK_LABEL: track},
        }
        for service in config.services
        for track in c.TRACKS
    ]

    def static(job: str, host: str, **extra) -> dict:
        group: dict = {"targets": [host]}
        if scoped:
            group["labels"] = dict(scoped)
        return {"job_name": job, "static_configs": [group], **extra}

    return {
        "global": {
            "scrape_interval": format_duration(config.monitoring.scrape_interval),
            "evaluation_interval": format_duration(config.monitoring.evaluation_interval),
            "external_labels": {"stack": stack},
        },
        "rule_files": [RULES_GLOB],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [hosts["alertmanager"]]}]}]},
        "scrape_configs": [
            {"job_name": c.JOB_SERVICE, "static_configs": services},
            {
                "job_name": c.JOB_PROBE,
                "metrics_path": "/probe",
                "params": {"module": [c.BLACKBOX_MODULE]},
                "static_configs": probes,
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": hosts["blackbox-exporter"]},
                ],
            },
            static(c.JOB_PROMETHEUS, "localhost:9090"),
            static(c.JOB_ALERTMANAGER, hosts["alertmanager"]),
            static(c.JOB_GRAFANA, hosts["grafana"]),
            # CI pushes with its own job label; keep it (honor_labels).
            static(c.JOB_PUSHGATEWAY, hosts["pushgateway"], honor_labels=True),
            static(c.JOB_NODE, hosts["node-exporter"]),
        ],
    }
