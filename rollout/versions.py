"""Every image and chart version rollout deploys, pinned in one place.

Bump a version here and nowhere else; the Helm-values tests compare our values
with the defaults of exactly these chart versions (../shared/reference/helm-values).
"""

from __future__ import annotations

CHART_REPOSITORY = "https://prometheus-community.github.io/helm-charts"

#: Helm charts of the Kubernetes target: name -> (chart, version).
CHARTS: dict[str, tuple[str, str]] = {
    "kube-prometheus-stack": ("kube-prometheus-stack", "88.5.3"),
    "prometheus-blackbox-exporter": ("prometheus-blackbox-exporter", "11.17.2"),
    "prometheus-pushgateway": ("prometheus-pushgateway", "3.8.0"),
}

#: Container images of the Docker (local) target and of sidecars, tag-pinned;
#: the same application versions as the charts above deploy.
IMAGES: dict[str, str] = {
    "prometheus": "quay.io/prometheus/prometheus:v3.14.0",
    "alertmanager": "quay.io/prometheus/alertmanager:v0.34.0",
    "grafana": "docker.io/grafana/grafana:12.1.1",
    "pushgateway": "quay.io/prometheus/pushgateway:v1.11.3",
    "node-exporter": "quay.io/prometheus/node-exporter:v1.9.1",
    "blackbox-exporter": "quay.io/prometheus/blackbox-exporter:v0.28.0",
    "flagd": "ghcr.io/open-feature/flagd:v0.12.9",
}
