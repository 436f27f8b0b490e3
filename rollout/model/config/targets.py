"""Where a stack deploys: a Kubernetes cluster (``rollout:kubernetes``) or Docker (``rollout:docker``)."""

from __future__ import annotations

from rollout.model.config.fields import DnsLabel, Model


class GatewayRef(Model):
    """The Gateway API Gateway that the services' HTTPRoutes attach to."""

    name: str
    """Name of the Gateway."""
    namespace: str
    """Namespace of the Gateway."""
    section_name: str | None = None
    """The listener of the Gateway to attach to; unset attaches to all listeners."""


class KubernetesSettings(Model):
    """Where and how the Kubernetes stacks deploy."""

    namespace: DnsLabel = "rollout"
    """Namespace for everything rollout declares."""
    render_yaml_to_directory: str | None = None
    """When set, the Kubernetes provider writes manifests to this folder instead of applying them
    to a cluster (the ``dev`` stack). Relative to the project.
    """
    context: str | None = None
    """kubeconfig context to use; unset uses the current context."""
    gateway: GatewayRef
    """The Gateway the services' HTTPRoutes attach to."""
    skip_await: bool = False
    """Do not wait for the objects to become ready (the provider's ``pulumi.com/skipAwait``
    annotation on every object). For clusters that run no workloads (a test API server without
    nodes); never on a real cluster, where waiting is what makes a failed rollout fail the ``up``
    and what holds a route's weight until the pods that take it are ready. A production-tier
    stack refuses it (``rollout-await-readiness``).
    """


class DockerPorts(Model):
    """Host ports the ``local`` stack publishes on 127.0.0.1."""

    prometheus: int = 9090
    """Prometheus' UI and API."""
    alertmanager: int = 9093
    """Alertmanager's UI and API."""
    grafana: int = 3000
    """Grafana's UI and API."""
    pushgateway: int = 9091
    """The Pushgateway CI pushes test results to."""
    service_stable: int = 8080
    """The service's stable track."""
    service_canary: int = 8081
    """The service's canary track."""


class DockerSettings(Model):
    """The ``local`` target: containers on one Docker network."""

    network: DnsLabel = "rollout"
    """The Docker network every container joins."""
    host: str | None = None
    """Docker daemon to talk to; unset uses DOCKER_HOST or the local socket."""
    ports: DockerPorts = DockerPorts()
    """Host ports, published on 127.0.0.1 only."""


