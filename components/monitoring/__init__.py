"""The monitoring stack: Prometheus, Alertmanager, Grafana, Pushgateway,
node-exporter and the blackbox exporter, for the Kubernetes and Docker targets."""

from components.monitoring.docker import DockerMonitoring, DockerMonitoringArgs
from components.monitoring.kubernetes import KubernetesMonitoring, KubernetesMonitoringArgs

__all__ = ["DockerMonitoring", "DockerMonitoringArgs", "KubernetesMonitoring", "KubernetesMonitoringArgs"]
