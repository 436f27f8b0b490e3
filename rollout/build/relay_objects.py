"""The relay's Kubernetes objects (``rollout:rollback.relay``), as plain data.

The program declares them (components/relay.py) and ``rollout render`` writes
them, from these same functions:

- a Secret with the two tokens (``secrets.relayToken`` as ``ROLLOUT_RELAY_TOKEN``,
  ``secrets.relayForgeToken`` as ``GITHUB_TOKEN``), given as arguments: Pulumi
  secret Outputs when declared, placeholders when rendered;
- a Deployment running ``rollout relay`` from the image pinned by digest, as a
  non-root user on a read-only root file system;
- a Service on :data:`rollout.model.conventions.RELAY_PORT`, which Alertmanager's
  rollback receiver posts to;
- a NetworkPolicy letting in only Alertmanager's pods (the webhook) and
  Prometheus' pods (``/metrics``), from the existing operator's namespace
  (``monitoring.existing.namespace``) when the stack does not install its own;
- in production, a PodDisruptionBudget keeping one pod up;
- with the fast path: a ServiceAccount with a Role that may only get and patch
  the stack's HTTPRoutes, by name (:func:`rbac_objects`).
"""

from __future__ import annotations

from typing import Any, Iterable

from rollout.build.traffic import awaited, spread
from rollout.model import conventions as c
from rollout.model.config import StackConfig

NAME = c.RELAY_NAME
SECRET_KEYS = ("ROLLOUT_RELAY_TOKEN", "GITHUB_TOKEN")


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, c.MANAGED_BY_LABEL[0]: c.MANAGED_BY_LABEL[1]}


def _meta(config: StackConfig) -> dict:
    return {"name": NAME, "namespace": config.kubernetes.namespace, "labels": _labels()}


def alertmanager_pods(config: StackConfig) -> dict[str, str]:
    """The labels the Prometheus operator puts on the stack's Alertmanager pods."""
    selector = {"app.kubernetes.io/name": "alertmanager"}
    if config.monitoring.install:
        selector["alertmanager"] = f"{config.monitoring.release_name}-alertmanager"
    return selector


def prometheus_pods(config: StackConfig) -> dict[str, str]:
    selector = {"app.kubernetes.io/name": "prometheus"}
    if config.monitoring.install:
        selector["prometheus"] = f"{config.monitoring.release_name}-prometheus"
    return selector


def secret(config: StackConfig, relay_token: Any, forge_token: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(config),
        "type": "Opaque",
        "stringData": dict(zip(SECRET_KEYS, (relay_token, forge_token))),
    }


def args(stack: str, config: StackConfig) -> list[str]:
    relay = config.rollback.relay
    argv = [
        "--project", "/app", "relay", "--stack", stack,
        "--listen", f"0.0.0.0:{c.RELAY_PORT}",
        "--forge-url", relay.forge_url, "--repository", relay.repository,
        "--deadline", f"{relay.deadline_seconds:g}",
    ]
    if config.fast_path:
        argv += ["--fast-path", "--namespace", config.kubernetes.namespace]
    return argv


def deployment(stack: str, config: StackConfig) -> dict:
    relay = config.rollback.relay
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    pod: dict = {
        "serviceAccountName": NAME if config.fast_path else "default",
        # Without the fast path the relay has no use for the Kubernetes API.
        "automountServiceAccountToken": config.fast_path,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        # Across zones and nodes at every replica count, as the services' pods (rollout.build.traffic.spread).
        "topologySpreadConstraints": spread({"app.kubernetes.io/name": NAME}),
        "containers": [
            {
                "name": "relay",
                "image": relay.image,
                "args": args(stack, config),
                "ports": [{"name": "http", "containerPort": c.RELAY_PORT}],
                "envFrom": [{"secretRef": {"name": NAME}}],
                "readinessProbe": probe,
                "livenessProbe": probe,
                "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "192Mi"}},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        # Awaited as the services' tracks are: every replica of this generation available.
        "metadata": {**_meta(config), "annotations": awaited(relay.replicas)},
        "spec": {
            "replicas": relay.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {"metadata": {"labels": _labels()}, "spec": pod},
        },
    }


def service(config: StackConfig) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(config),
        "spec": {
            "selector": {"app.kubernetes.io/name": NAME},
            "ports": [{"name": "http", "port": c.RELAY_PORT, "targetPort": "http"}],
        },
    }


def network_policy(config: StackConfig) -> dict:
    port = [{"protocol": "TCP", "port": c.RELAY_PORT}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(config),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [_peer(config, alertmanager_pods(config))], "ports": port},
                {"from": [_peer(config, prometheus_pods(config))], "ports": port},
            ],
        },
    }


def _peer(config: StackConfig, pods: dict[str, str]) -> dict:
    """Pods of the stack's namespace, or of the existing operator's (``monitoring.existing.namespace``)."""
    peer: dict = {"podSelector": {"matchLabels": pods}}
    if not config.monitoring.install:
        peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": config.monitoring.existing.namespace}}
    return peer


def disruption_budget(config: StackConfig) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(config),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}}},
    }


def objects(stack: str, config: StackConfig, relay_token: Any, forge_token: Any) -> list[dict]:
    """Every object of the relay, or none when the stack deploys no relay."""
    if config.rollback.relay is None or config.kubernetes is None:
        return []
    documents = [secret(config, relay_token, forge_token), deployment(stack, config), service(config), network_policy(config)]
    if config.tier == "production":
        documents.append(disruption_budget(config))
    if config.fast_path:
        documents += rbac_objects(config.kubernetes.namespace, [s.name for s in config.services])
    return documents


def rbac_objects(namespace: str, services: Iterable[str]) -> list[dict]:
    """The relay's ServiceAccount, and a Role and RoleBinding letting it get and patch only these routes."""
    names = sorted(services)
    meta = {"name": NAME, "namespace": namespace, "labels": {"app.kubernetes.io/name": NAME}}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": True},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [{"apiGroups": [c.GATEWAY_API_GROUP], "resources": ["httproutes"], "resourceNames": names, "verbs": ["get", "patch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
        },
    ]
