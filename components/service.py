"""CanaryService: a service's stable and canary tracks and the traffic split between them.

Kubernetes: a Deployment and a Service per track, a PodDisruptionBudget per
track in production, and a Gateway API HTTPRoute with backend weights
stable 100 - w and canary w (rollout/build/traffic.py builds every object).

Traffic follows readiness: the route depends on the Services and on the
Deployments whose pods take its traffic (:func:`rollout.build.traffic.traffic_takers`),
and the Kubernetes provider awaits a Deployment's rollout (all its replicas
updated and available, as its ``pulumi.com/waitFor`` conditions say:
:func:`rollout.build.traffic.rollout_complete`) before the engine applies
anything that depends on it. So a weight
goes up only once the canary's scale-up is ready, and a promote moves traffic
to stable only once stable runs the release on ready pods. When the canary's
weight goes down (a rollback, a promote), its Deployment depends on the route
instead: traffic leaves it before it scales down (to zero once promoted), and
the up does not wait for its pods (in a rollback, the ones that failed).
``kubernetes.skipAwait`` would turn the waiting off; production refuses it
(policies/production.py).

Docker: one container per track on the stack's network. Plain Docker has no
weighted routing: both tracks are published on their own 127.0.0.1 ports, the
weight is recorded as a label, and sending traffic to each track is left to
whatever drives the local stack. Docker has no readiness probes or disruption
budgets either; the container's healthcheck calls the health path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi

from rollout.model import conventions as c
from rollout.build import traffic
from rollout.model.config import ServiceSettings, StackConfig

TYPE = "rollout:services:CanaryService"
STATE_LABEL = "rollout.dev/weight"


@dataclass(frozen=True)
class CanaryServiceArgs:
    config: StackConfig
    service: ServiceSettings
    namespace: pulumi.Input[str] | None = None
    network_name: pulumi.Input[str] | None = None


class KubernetesCanaryService(pulumi.ComponentResource):
    def __init__(self, name: str, args: CanaryServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        from components.kube import KubernetesObject

        config, service = args.config, args.service
        child = pulumi.ResourceOptions(parent=self)
        takers = traffic.traffic_takers(service)

        def deployment(track: str, opts: pulumi.ResourceOptions):
            document = traffic.deployment(config, service, track)
            return KubernetesObject(f"{name}-{track}", document, args.namespace, opts)

        waited_for = []
        for track in c.TRACKS:
            if track in takers:
                waited_for.append(deployment(track, child))
            svc = traffic.service_object(service, track)
            waited_for.append(KubernetesObject(f"{name}-{track}-service", svc, args.namespace, child))
            if config.tier == "production":
                pdb = traffic.disruption_budget(service, track)
                KubernetesObject(f"{name}-{track}-pdb", pdb, args.namespace, child)
        self.route = KubernetesObject(
            f"{name}-route",
            traffic.http_route(config, service),
            args.namespace,
            pulumi.ResourceOptions(parent=self, depends_on=waited_for),
        )
        for track in c.TRACKS:
            if track not in takers:
                # Its pods take no traffic once the route is applied: they change (scale down) after it.
                deployment(track, pulumi.ResourceOptions(parent=self, depends_on=[self.route]))
        self.register_outputs({"weight": service.rollout.weight})


class DockerCanaryService(pulumi.ComponentResource):
    def __init__(self, name: str, args: CanaryServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        import pulumi_docker as docker  # a Kubernetes stack never loads the Docker provider

        config, service = args.config, args.service
        ports = {c.STABLE: config.docker.ports.service_stable, c.CANARY: config.docker.ports.service_canary}
        flagd_host, flagd_port = c.DOCKER_HOSTS["flagd"]
        for track in c.TRACKS:
            settings = service.stable if track == c.STABLE else service.canary
            image = docker.RemoteImage(
                f"{name}-{track}-image", name=settings.image, keep_locally=True, opts=pulumi.ResourceOptions(parent=self)
            )
            docker.Container(
                f"{name}-{track}",
                name=f"{config.docker.network}-{service.name}-{track}",
                image=image.image_id,
                envs=[f"ROLLOUT_TRACK={track}", f"FLAGD_HOST={flagd_host}", f"FLAGD_PORT={flagd_port}"],
                ports=[docker.ContainerPortArgs(internal=service.port, external=ports[track], ip="127.0.0.1")],
                memory=_mebibytes(service.resources.limits.memory),
                labels=[
                    docker.ContainerLabelArgs(label=traffic.NAME_LABEL_KEY, value=service.name),
                    docker.ContainerLabelArgs(label=traffic.TRACK_LABEL_KEY, value=track),
                    docker.ContainerLabelArgs(label=STATE_LABEL, value=json.dumps(traffic.weights(service.rollout.weight)[track])),
                ],
                healthcheck=docker.ContainerHealthcheckArgs(
                    tests=["CMD", "wget", "-q", "-O-", f"http://127.0.0.1:{service.port}{service.health.path}"],
                    interval=f"{service.health.period_seconds}s",
                    retries=3,
                ),
                networks_advanced=[
                    docker.ContainerNetworksAdvancedArgs(name=args.network_name, aliases=[f"{service.name}-{track}"])
                ],
                restart="unless-stopped",
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"weight": service.rollout.weight})


def _mebibytes(quantity: str) -> int:
    """A Kubernetes memory quantity in MiB, as Docker's memory limit takes it."""
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024, "k": 1000 / 1024 / 1024, "M": 1000**2 / 1024**2, "G": 1000**3 / 1024**2}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return max(4, int(float(quantity[: -len(suffix)]) * factor))
    return max(4, int(float(quantity) / 1024 / 1024))
