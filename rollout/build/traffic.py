"""A canary service's Kubernetes objects, as plain data: Deployments, Services,
PodDisruptionBudgets and the HTTPRoute that splits traffic by weight.

The canary's replicas follow its weight: ``max(canary.replicas,
ceil(stable.replicas * weight / 100))`` (:func:`rollout.model.releases.canary_replicas`),
so at every stage it has at least its share of the stable track's pods. At
weight 0 the canary takes no traffic (its backend weight is 0), but its pods
keep running at ``canary.replicas``: they stay health-checked by the blackbox
probe and the kubelet, so a broken canary image shows (and can trigger its
rollback) before it takes a single request, and the first stage starts warm.
Once the release is promoted (the stable track runs the canary's release), the
canary has nothing left to try: it runs no pods until the next ``rollout
release`` (:func:`rollout.model.releases.canary_replicas`), and no probe checks it.

Every pod is hardened as Pod Security's ``restricted`` profile requires, like
the relay's (rollout/build/relay_objects.py): it runs as user and group
:data:`RUN_AS` (never root), on a read-only root file system with a writable
``/tmp`` (an ``emptyDir``), without privilege escalation or any capability, under
the runtime's default seccomp profile. A track spreads its pods across zones and
nodes (``topologySpreadConstraints``, one skew at most; best effort, so a cluster
of one zone still schedules them), at every replica count: a scale, as the
canary's at each stage, changes ``replicas`` only, never the pod template, so it
adds or removes pods without replacing the ones that run.
"""

from __future__ import annotations

import json

from rollout.model import conventions as c
from rollout.model.config import ServiceSettings, StackConfig

TRACK_LABEL_KEY = "rollout.dev/track"
NAME_LABEL_KEY = "app.kubernetes.io/name"
GATEWAY_API = f"{c.GATEWAY_API_GROUP}/{c.GATEWAY_API_VERSION}"
#: The Kubernetes provider's annotation that forces server-side apply ownership.
PATCH_FORCE = "pulumi.com/patchForce"
#: The Kubernetes provider's annotation naming the conditions an apply waits for.
WAIT_FOR = "pulumi.com/waitFor"


def weights(weight: int) -> dict[str, int]:
    """Backend weights of the two tracks: stable 100 - w, canary w."""
    return {c.STABLE: 100 - weight, c.CANARY: weight}


def canary_leaving(service: ServiceSettings) -> bool:
    """The last history entry lowers the canary's weight (a rollback, a promote): its pods lose
    traffic rather than take it, so the route moves first and the canary's Deployment after it."""
    history = service.rollout.history
    return len(history) > 1 and history[-1].weight < history[-2].weight


def traffic_takers(service: ServiceSettings) -> tuple[str, ...]:
    """The tracks whose pods take the route's traffic once it is applied: the route waits for their
    Deployments to be ready (components/service.py). The stable track always (it carries 100 - w,
    and a promote rolls its new image out before the route moves traffic to it); the canary when its
    weight is above 0 and not going down (at 75 % and 100 % its scale-up is ready before its weight)."""
    weight = service.rollout.weight
    return (c.STABLE, c.CANARY) if weight > 0 and not canary_leaving(service) else (c.STABLE,)


def labels(service: ServiceSettings, track: str) -> dict[str, str]:
    return {NAME_LABEL_KEY: service.name, TRACK_LABEL_KEY: track, c.MANAGED_BY_LABEL[0]: c.MANAGED_BY_LABEL[1]}


def track_name(service: ServiceSettings, track: str) -> str:
    return f"{service.name}-{track}"


#: The user and group a service's containers run as (not root; the relay's too).
RUN_AS = 10001
#: The topology keys a track's pods spread across, widest first.
SPREAD_KEYS = ("topology.kubernetes.io/zone", "kubernetes.io/hostname")


def pod_security_context() -> dict:
    """The pod's securityContext: Pod Security ``restricted`` (non-root, seccomp RuntimeDefault)."""
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict:
    """Each container's securityContext: no escalation, no capability, a read-only root file system."""
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def spread(selector: dict[str, str]) -> list[dict]:
    """Spread the pods of one revision across zones and nodes.

    Whatever the replica count, one replica included: the constraints are part of the pod
    template, and a template that changed with the count would make a scale a rollout (the
    canary's replicas follow its weight, so a stage would replace its pods)."""
    return [
        {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": dict(selector)}, "matchLabelKeys": ["pod-template-hash"]}
        for key in SPREAD_KEYS
    ]


def rollout_complete(replicas: int, pods: bool = True) -> list[str]:
    """What a Deployment waits for before anything that depends on it is applied (and before the
    up ends): the Deployment controller has observed this generation and all ``replicas`` pods run
    it, ready, with no pod of an older ReplicaSet left (``kubectl rollout status``'s test).

    Written as the provider's ``pulumi.com/waitFor`` conditions rather than left to its built-in
    Deployment await, which can finish on the previous generation's status: its informers are
    shared per namespace, so when both tracks change in one up the second await can start from a
    cache that still holds the old object, count that as the controller having caught up, and then
    take the update's own event (new generation, old "available" status) as the rollout done,
    before a scale-up's new pods are ready. The provider checks every condition here only once
    ``status.observedGeneration`` has reached ``metadata.generation`` and never goes back to an
    older generation.

    Only the observation, without ``pods``: for a canary leaving traffic (a rollback, a promote),
    whose pods take none once the route has moved, and which are, in a rollback, the pods that
    failed: the up that deploys a rollback must not wait on them, nor fail when they never become
    ready. At zero replicas too: the counts leave the status (Kubernetes omits them), and there is
    no pod to wait for."""
    if replicas == 0 or not pods:
        return ["jsonpath={.status.observedGeneration}"]
    counts = ("updatedReplicas", "replicas", "availableReplicas")
    return [f"jsonpath={{.status.{field}}}={replicas}" for field in counts]


def awaited(replicas: int, pods: bool = True) -> dict[str, str]:
    """The annotations of a Deployment of ``replicas`` that the provider awaits as :func:`rollout_complete` says."""
    return {WAIT_FOR: json.dumps(rollout_complete(replicas, pods))}


def deployment(config: StackConfig, service: ServiceSettings, track: str) -> dict:
    settings = service.stable if track == c.STABLE else service.canary
    probe = {"httpGet": {"path": service.health.path, "port": "http"}, "periodSeconds": service.health.period_seconds}
    selector = {NAME_LABEL_KEY: service.name, TRACK_LABEL_KEY: track}
    # The canary carries its share: see rollout.model.releases.canary_replicas.
    replicas = service.canary_replicas() if track == c.CANARY else settings.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": track_name(service, track), "labels": labels(service, track),
                     # A canary leaving traffic is not waited for (see rollout_complete).
                     "annotations": awaited(replicas, pods=not (track == c.CANARY and canary_leaving(service)))},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels(service, track)},
                "spec": {
                    "securityContext": pod_security_context(),
                    "topologySpreadConstraints": spread(selector),
                    "containers": [
                        {
                            "name": service.name,
                            "image": settings.image,
                            "ports": [{"name": "http", "containerPort": service.port}],
                            "env": [
                                # The service puts this in every flag evaluation's context.
                                {"name": "ROLLOUT_TRACK", "value": track},
                                {"name": "FLAGD_RESOLVER", "value": "in-process"},
                                {"name": "FLAGD_OFFLINE_FLAG_SOURCE_PATH", "value": f"{c.FLAGS_MOUNT_DIR}/{c.FLAGS_FILE_NAME}"},
                            ],
                            # Readiness gives up after 3 failures and liveness after 6, so
                            # a pod that is merely slow leaves the Service's endpoints
                            # well before the kubelet restarts it.
                            "readinessProbe": {**probe, "failureThreshold": 3},
                            "livenessProbe": {**probe, "failureThreshold": 6, "initialDelaySeconds": 10},
                            "resources": service.resources.model_dump(by_alias=True),
                            "securityContext": container_security_context(),
                            # A directory mount: the kubelet updates it in place
                            # when the flags change (a subPath mount never would).
                            "volumeMounts": [{"name": "flags", "mountPath": c.FLAGS_MOUNT_DIR, "readOnly": True},
                                             {"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "flags", "configMap": {"name": c.FLAGS_CONFIGMAP}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def service_object(service: ServiceSettings, track: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": track_name(service, track), "labels": labels(service, track)},
        "spec": {
            "selector": {NAME_LABEL_KEY: service.name, TRACK_LABEL_KEY: track},
            "ports": [{"name": "http", "port": service.port, "targetPort": "http"}],
        },
    }


def disruption_budget(service: ServiceSettings, track: str) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": track_name(service, track), "labels": labels(service, track)},
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {NAME_LABEL_KEY: service.name, TRACK_LABEL_KEY: track}},
        },
    }


def http_route(config: StackConfig, service: ServiceSettings) -> dict:
    gateway = config.kubernetes.gateway
    parent = {"group": c.GATEWAY_API_GROUP, "kind": "Gateway", "name": gateway.name, "namespace": gateway.namespace}
    if gateway.section_name:
        parent["sectionName"] = gateway.section_name
    split = weights(service.rollout.weight)
    spec: dict = {"parentRefs": [parent]}
    if service.route.hostnames:
        spec["hostnames"] = list(service.route.hostnames)
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": {
            "name": service.name,
            "labels": {NAME_LABEL_KEY: service.name},
            # The weights are the stack file's: an up takes the fields back from
            # any other field manager that wrote them (the relay's fast path,
            # kubectl), instead of failing on a server-side apply conflict
            # (which would refuse the very up that deploys a rollback).
            "annotations": {PATCH_FORCE: "true"},
        },
        "spec": {
            **spec,
            "rules": [
                {
                    "matches": [_match(m) for m in service.route.matches],
                    "backendRefs": [
                        {"name": track_name(service, track), "port": service.port, "weight": split[track]}
                        for track in c.TRACKS
                    ],
                }
            ],
        },
    }


def _match(match) -> dict:
    """One HTTPRouteMatch from the service's route config."""
    found: dict = {"path": {"type": match.path.type, "value": match.path.value}}
    if match.method:
        found["method"] = match.method
    return found


def manifests(config: StackConfig, service: ServiceSettings) -> dict[str, dict]:
    """Every Kubernetes object of one canary service as a whole manifest, by file name.

    The same builders the component declares from, with the stack's namespace
    filled in: ``rollout render`` writes these as ``kubernetes/<file>``.
    """
    namespace = config.kubernetes.namespace
    objects: list[dict] = []
    for track in c.TRACKS:
        objects += [deployment(config, service, track), service_object(service, track)]
        if config.tier == "production":
            objects.append(disruption_budget(service, track))
    objects.append(http_route(config, service))
    return {
        f"{body['metadata']['name']}-{body['kind'].lower()}.yaml": {
            **body,
            "metadata": {**body["metadata"], "namespace": namespace},
        }
        for body in objects
    }
