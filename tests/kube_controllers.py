"""Stand-ins for the controllers a test API server lacks: pods that become ready.

tests/kube_cluster.py runs etcd and kube-apiserver only: nothing turns a
Deployment into ready pods, so the Kubernetes provider's readiness await would
wait for ever. :class:`Readiness` plays the deployment controller, the kubelet
and the endpoints controller for the namespaces it is given, the way the
provider watches them (pulumi-kubernetes' Deployment and Service awaiters):

- for each Deployment generation it has not handled, a ReplicaSet per pod
  template (owned by the Deployment, ``deployment.kubernetes.io/revision``
  counting templates), and the Deployment's revision annotation;
- ``delay`` seconds later, the ReplicaSet's pods ready and the Deployment's
  status observed, available and progressed (``NewReplicaSetAvailable``);
- each Service's Endpoints: one ready address per ready pod its selector takes;
- with :attr:`lagging_replica_sets`, a scale as an await sees it when its ReplicaSet events
  lag the Deployment's (the status observed and still "available", the ReplicaSet's count late).
- the Deployments named in :attr:`stuck` never get ready pods (a broken release).

It records when it first saw each Deployment generation and when it made it
ready (:attr:`seen`, :attr:`ready`), so a test can hold another object's change
against them. It runs in a thread of the test, polling: each namespace's Deployments every
:attr:`poll` seconds (the Deployment controller marks a new generation at once, and a status
left at the previous generation's "available" for longer would tell a readiness await the
new pods were ready), its Services every :attr:`endpoints_every` polls, an Endpoints written
only when its ready addresses or ports change; ``stop()`` ends it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field

REVISION = "deployment.kubernetes.io/revision"


@dataclass
class Readiness:
    api: object
    namespaces: tuple[str, ...]
    delay: float = 0.5
    poll: float = 0.1
    #: Show a scale (a new generation of a pod template already seen) as an await sees it when its
    #: ReplicaSet events lag the Deployment's: the Deployment's status observes the generation at once
    #: and stays "available" (as the Deployment controller leaves it on a scale), while the ReplicaSet
    #: shows the new replica count only when its pods are ready, ``delay`` later. An await that takes
    #: the Deployment's conditions and the ReplicaSet as they stand passes at once; one that counts the
    #: Deployment's own updated and available pods waits for them. A new template is handled in step.
    lagging_replica_sets: bool = False
    #: Deployments whose new generations are observed but whose pods never become ready (a broken
    #: release): the controller's "progressing" status, and nothing after it.
    stuck: set[str] = field(default_factory=set)
    endpoints_every: int = 3
    seen: dict[tuple[str, str, int], float] = field(default_factory=dict)
    ready: dict[tuple[str, str, int], float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from kubernetes import client

        self._apps = client.AppsV1Api(self.api)
        self._core = client.CoreV1Api(self.api)
        self._revisions: dict[tuple[str, str], dict[str, int]] = {}
        self._written: dict[tuple[str, str], tuple] = {}  # (namespace, Service uid): (ready addresses, ports) written
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="readiness", daemon=True)

    def start(self) -> "Readiness":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        polls = 0
        while not self._stop.wait(self.poll):
            polls += 1
            for namespace in self.namespaces:
                try:
                    deployments = self._apps.list_namespaced_deployment(namespace).items
                    self._deployments(namespace, deployments)
                    if polls % self.endpoints_every == 0:
                        self._endpoints(namespace, deployments)
                except Exception as err:  # noqa: BLE001 - kept for the test to show, never swallowed silently
                    if "404" not in str(err):
                        self.errors.append(f"{namespace}: {err}")

    def _deployments(self, namespace: str, deployments: list) -> None:
        for deployment in deployments:
            meta, spec = deployment.metadata, deployment.spec
            key = (namespace, meta.name, meta.generation)
            observed = deployment.status.observed_generation if deployment.status else None
            if observed == meta.generation and key in self.ready:
                continue
            now = time.monotonic()
            if key not in self.seen:
                self.seen[key] = now
                if self.lagging_replica_sets and self._known_template(namespace, deployment):
                    self._apps.patch_namespaced_deployment_status(meta.name, namespace, {
                        "status": {"observedGeneration": meta.generation}})
                else:
                    self._replica_set(namespace, deployment)
                    self._progressing(namespace, deployment)
            elif now - self.seen[key] >= self.delay and meta.name not in self.stuck:
                # Stamped as the status is first sent: a watcher (the provider's await) may see the
                # pods ready as soon as the API server stores it, before this client hears back; and
                # a list that still shows the old status (the API server's cache lags under load)
                # sends it again, which is not the moment the pods became ready.
                self.ready.setdefault(key, time.monotonic())
                if self.lagging_replica_sets:
                    self._replica_set(namespace, deployment)
                self._make_ready(namespace, deployment)

    def _known_template(self, namespace: str, deployment) -> bool:
        """The Deployment's pod template has a ReplicaSet already: its new generation is a scale."""
        return self._template(deployment)[0] in self._revisions.get((namespace, deployment.metadata.name), {})

    def _template(self, deployment) -> tuple[str, dict]:
        template = self.api.sanitize_for_serialization(deployment.spec.template)
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        return digest, template

    def _replica_set(self, namespace: str, deployment) -> None:
        from kubernetes.client.exceptions import ApiException

        name = deployment.metadata.name
        digest, template = self._template(deployment)
        revisions = self._revisions.setdefault((namespace, name), {})
        revision = revisions.setdefault(digest, max(revisions.values(), default=0) + 1)
        labels = {**(template["metadata"].get("labels") or {}), "pod-template-hash": digest}
        template["metadata"]["labels"] = labels
        body = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{name}-{digest}", "namespace": namespace, "labels": labels,
                         "annotations": {REVISION: str(revision)},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                              "uid": deployment.metadata.uid, "controller": True}]},
            "spec": {"replicas": deployment.spec.replicas,
                     "selector": {"matchLabels": {**deployment.spec.selector.match_labels, "pod-template-hash": digest}},
                     "template": template},
        }
        try:
            self._apps.create_namespaced_replica_set(namespace, body)
        except ApiException as err:
            if err.status != 409:
                raise
            self._apps.patch_namespaced_replica_set(f"{name}-{digest}", namespace, {
                "metadata": {"annotations": {REVISION: str(revision)}}, "spec": {"replicas": deployment.spec.replicas}})
        self._apps.patch_namespaced_deployment(name, namespace, {"metadata": {"annotations": {REVISION: str(revision)}}})

    def _progressing(self, namespace: str, deployment) -> None:
        """What the Deployment controller says at once of a new generation: observed, its new pods
        not yet updated nor ready. Left at the previous generation's "available", the status would
        tell a readiness await the new pods were ready before they are."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = deployment.status
        self._apps.patch_namespaced_deployment_status(deployment.metadata.name, namespace, {"status": {
            "observedGeneration": deployment.metadata.generation, "updatedReplicas": 0,
            "readyReplicas": (status.ready_replicas or 0) if status else 0,
            "availableReplicas": (status.available_replicas or 0) if status else 0,
            "unavailableReplicas": deployment.spec.replicas or 0,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                 "message": "new pods starting", "lastUpdateTime": stamp, "lastTransitionTime": stamp},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                 "message": "progressing", "lastUpdateTime": stamp, "lastTransitionTime": stamp},
            ]}})

    def _make_ready(self, namespace: str, deployment) -> None:
        name, replicas = deployment.metadata.name, deployment.spec.replicas or 0
        digest, _ = self._template(deployment)
        replica_set = self._apps.read_namespaced_replica_set(f"{name}-{digest}", namespace)
        self._apps.patch_namespaced_replica_set_status(f"{name}-{digest}", namespace, {"status": {
            "replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
            "fullyLabeledReplicas": replicas, "observedGeneration": replica_set.metadata.generation}})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._apps.patch_namespaced_deployment_status(name, namespace, {"status": {
            "observedGeneration": deployment.metadata.generation, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
            "unavailableReplicas": 0,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "ready", "lastUpdateTime": stamp, "lastTransitionTime": stamp},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": "available", "lastUpdateTime": stamp, "lastTransitionTime": stamp},
            ]}})

    def _endpoints(self, namespace: str, deployments: list) -> None:
        """Each Service's Endpoints from the Deployments as listed (a status made ready in this
        poll shows in the next one, as the endpoints controller follows the pods)."""
        from kubernetes.client.exceptions import ApiException

        ready = {}
        for deployment in deployments:
            status = deployment.status
            labels = deployment.spec.template.metadata.labels or {}
            ready[json.dumps(labels, sort_keys=True)] = (labels, (status.ready_replicas or 0) if status else 0)
        for service in self._core.list_namespaced_service(namespace).items:
            selector = service.spec.selector or {}
            if not selector:
                continue
            count = sum(n for labels, n in ready.values() if all(labels.get(k) == v for k, v in selector.items()))
            ports = [{"name": p.name, "port": p.port, "protocol": p.protocol or "TCP"} for p in service.spec.ports or []]
            written, state = (namespace, service.metadata.uid), (count, json.dumps(ports, sort_keys=True))
            if self._written.get(written) == state:
                continue
            subsets = [{"addresses": [{"ip": f"10.1.0.{i + 1}"} for i in range(count)], "ports": ports}] if count else []
            body = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": service.metadata.name, "namespace": namespace}, "subsets": subsets}
            try:
                current = self._core.read_namespaced_endpoints(service.metadata.name, namespace)
            except ApiException as err:
                if err.status != 404:
                    raise
                self._core.create_namespaced_endpoints(namespace, body)
            else:
                shown = self.api.sanitize_for_serialization(current).get("subsets") or []
                if len(shown[0]["addresses"] if shown and shown[0].get("addresses") else []) != count:
                    self._core.replace_namespaced_endpoints(service.metadata.name, namespace, body)
            self._written[written] = state
