"""The resource policies of a production-tier stack: readiness, pace and hardened pods.

Plain functions over the resources (anything with ``type``, ``name`` and ``props``)
and the rollout state, listed in :data:`PRODUCTION_POLICIES`; policies/rules.py
makes each one a policy that reports only in a production-tier stack (mandatory
there, like every resource policy):

``rollout-production-pace``
    No service rolls out under the ``instant`` plan (0 → 100 % after a minute):
    production takes ``safe`` or ``fast``.
``rollout-await-readiness``
    No object carries the provider's ``pulumi.com/skipAwait`` annotation
    (``kubernetes.skipAwait``): an up waits for the Deployments' pods to be
    ready, and the routes wait for them (components/service.py).
``rollout-pod-security``
    Every Deployment's pods meet Pod Security's ``restricted`` profile and are
    hardened beyond it: non-root, a read-only root file system, no privilege
    escalation, every capability dropped, the runtime's default seccomp profile;
    with more than one replica, spread across zones and nodes.

Missing requests and limits are ``rollout-requests-and-limits`` (policies/rules.py).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

#: The provider's annotation that turns its readiness await off (rollout.engine.program).
SKIP_AWAIT = "pulumi.com/skipAwait"
#: Plans production refuses.
TOO_FAST_PLANS = ("instant",)
#: The topology keys a Deployment with more than one replica spreads across.
SPREAD_KEYS = ("topology.kubernetes.io/zone", "kubernetes.io/hostname")


def instant_plans(state: Mapping[str, Any] | None) -> Iterable[tuple[str, str]]:
    """``(service, message)`` for each service of the rollout state under a plan production refuses."""
    for name, service in sorted(((state or {}).get("services") or {}).items()):
        plan = (service or {}).get("plan")
        if plan in TOO_FAST_PLANS:
            yield f"service {name}", (f"plan {plan} goes 0 -> 100% after a minute's soak; a production stack "
                                      "rolls out under safe or fast")


def skips_await(metadata: Mapping[str, Any] | None) -> bool:
    annotations = (metadata or {}).get("annotations") or {}
    return str(annotations.get(SKIP_AWAIT, "")).lower() == "true"


def pod_problems(spec: Mapping[str, Any] | None) -> list[str]:
    """What in a Deployment's spec falls short of a hardened pod (empty: nothing)."""
    spec = spec or {}
    pod = ((spec.get("template") or {}).get("spec")) or {}
    context = pod.get("securityContext") or {}
    problems = []
    if (context.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("the pod has no seccompProfile RuntimeDefault")
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        own = container.get("securityContext") or {}
        name = container.get("name")
        if not (own.get("runAsNonRoot") or context.get("runAsNonRoot")):
            problems.append(f"container {name!r} may run as root (runAsNonRoot is not true)")
        if 0 in (own.get("runAsUser"), context.get("runAsUser")):
            problems.append(f"container {name!r} runs as user 0")
        if own.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name!r} does not set allowPrivilegeEscalation: false")
        if "ALL" not in ((own.get("capabilities") or {}).get("drop") or []):
            problems.append(f"container {name!r} does not drop ALL capabilities")
        if own.get("readOnlyRootFilesystem") is not True:
            problems.append(f"container {name!r} has a writable root file system")
        if own.get("privileged"):
            problems.append(f"container {name!r} is privileged")
    replicas = spec.get("replicas")
    if isinstance(replicas, (int, float)) and replicas > 1:
        keys = {c.get("topologyKey") for c in pod.get("topologySpreadConstraints") or []}
        missing = [key for key in SPREAD_KEYS if key not in keys]
        if missing:
            problems.append(f"{int(replicas)} replicas are not spread across {', '.join(missing)}")
    return problems


DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def pace(resources: list[Any], state: Mapping[str, Any] | None) -> Iterable[tuple[str, str]]:
    return instant_plans(state)


def readiness(resources: list[Any], state: Mapping[str, Any] | None) -> Iterable[tuple[str, str]]:
    for resource in resources:
        if resource.type.startswith("kubernetes:") and skips_await(resource.props.get("metadata")):
            yield resource.name, ("skips the provider's readiness await (kubernetes.skipAwait): production waits for "
                                  "ready pods before traffic moves")


def pods(resources: list[Any], state: Mapping[str, Any] | None) -> Iterable[tuple[str, str]]:
    for resource in resources:
        if resource.type == DEPLOYMENT:
            for problem in pod_problems(resource.props.get("spec")):
                yield resource.name, problem


def idle_canary(resource: Any, state: Mapping[str, Any] | None) -> bool:
    """A canary Deployment whose service's state gives the canary no pods (its release was promoted):
    ``rollout-production-replicas`` lets it run none."""
    labels = ((resource.props.get("metadata") or {}).get("labels")) or {}
    if labels.get("rollout.dev/track") != "canary":
        return False
    service = ((state or {}).get("services") or {}).get(labels.get("app.kubernetes.io/name")) or {}
    return (service.get("canary") or {}).get("replicas") == 0 and service.get("weight") == 0


#: (name, description, remediation, check) of each production policy.
PRODUCTION_POLICIES = (
    ("rollout-production-pace", "In production, no service rolls out under the instant plan.",
     "Set rollout:services[].rollout.plan to safe or fast (a plan change lands in a change of its own).", pace),
    ("rollout-await-readiness",
     "In production, the provider awaits every object's readiness (no kubernetes.skipAwait).",
     "Remove rollout:kubernetes.skipAwait; it is for test clusters that run no pods.", readiness),
    ("rollout-pod-security",
     "In production, every pod is hardened (Pod Security restricted, read-only root, spread when replicated).",
     "Declare Deployments through rollout/build (traffic.py, relay_objects.py), which harden every pod.", pods),
)

__all__ = ["PRODUCTION_POLICIES", "SKIP_AWAIT", "idle_canary", "instant_plans", "pod_problems", "skips_await"]
