"""The blackbox exporter the stack's Probes use when it plugs into an existing operator.

With ``monitoring.install: true`` the prometheus-blackbox-exporter chart runs it.
With ``install: false`` and no ``monitoring.existing.blackboxExporter`` address, the
program deploys one itself, as plain objects (so ``make up`` and the engine tests
need no chart repository): a ConfigMap with the same module configuration the
chart gets (rollout.build.helm_values.blackbox_values), a Deployment of the
pinned image and a Service under the chart's name, so the Probes' prober address
is the same either way (rollout.build.helm_values.blackbox_address).
"""

from __future__ import annotations

from typing import Any

from rollout.build import yamlout
from rollout.build.helm_values import BLACKBOX_PORT, BLACKBOX_RELEASE, blackbox_values
from rollout.build.traffic import awaited, spread
from rollout.model import conventions as c
from rollout.model import versions
from rollout.model.config import StackConfig

NAME = BLACKBOX_RELEASE
CONFIG_FILE = "blackbox.yml"
CONFIG_DIR = "/etc/blackbox_exporter"


def deployed(config: StackConfig) -> bool:
    """Whether the program deploys the exporter itself (an existing operator, no address given)."""
    return (
        config.target == "kubernetes"
        and not config.monitoring.install
        and config.monitoring.existing.blackbox_exporter is None
    )


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, c.MANAGED_BY_LABEL[0]: c.MANAGED_BY_LABEL[1], c.PART_OF_LABEL[0]: c.PART_OF_LABEL[1]}


def _meta(config: StackConfig) -> dict[str, Any]:
    return {"name": NAME, "namespace": config.kubernetes.namespace, "labels": _labels()}


def objects(config: StackConfig, stack: str) -> list[dict]:
    """ConfigMap, Deployment and Service of the exporter (and in production a PodDisruptionBudget);
    none when it is not deployed."""
    if not deployed(config):
        return []
    selector = {"app.kubernetes.io/name": NAME}
    probe = {"httpGet": {"path": "/-/healthy", "port": "http"}, "periodSeconds": 10}
    replicas = 2 if config.tier == "production" else 1
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
        # Across zones and nodes at every replica count, as the services' pods (rollout.build.traffic.spread).
        "topologySpreadConstraints": spread(selector),
        "automountServiceAccountToken": False,
        "containers": [
            {
                "name": "blackbox-exporter",
                "image": versions.IMAGES["blackbox-exporter"],
                "args": [f"--config.file={CONFIG_DIR}/{CONFIG_FILE}"],
                "ports": [{"name": "http", "containerPort": BLACKBOX_PORT}],
                "readinessProbe": probe,
                "livenessProbe": probe,
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                # A directory mount (never subPath) so that an edited module is picked up on restart.
                "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": NAME}}],
    }
    budget = [
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _meta(config),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}},
        }
    ] if config.tier == "production" else []
    return budget + [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(config),
            "data": {CONFIG_FILE: yamlout.dump(blackbox_values(config)["config"], stack)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            # Awaited as the services' tracks are: every replica of this generation available.
            "metadata": {**_meta(config), "annotations": awaited(replicas)},
            "spec": {
                # Production's policies want two pods and a disruption budget for every Deployment:
                # the Probes are the rollback trigger's eyes.
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": _labels()}, "spec": pod},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(config),
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": BLACKBOX_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
        },
    ]
