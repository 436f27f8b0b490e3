"""The resource policies of a production-tier stack: readiness, pace and hardened pods.

Plain functions over plain data, wrapped as policies in policies/rules.py (they
are mandatory in production and advisory elsewhere, like every resource policy,
and each one reports only in a production-tier stack):

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


__all__ = ["SKIP_AWAIT", "instant_plans", "pod_problems", "skips_await"]
