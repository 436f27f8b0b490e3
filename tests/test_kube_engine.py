"""staging and production deployed by the real engine into a real kube-apiserver.

The cluster (tests/kube_cluster.py) is etcd and kube-apiserver on 127.0.0.1
with the prometheus-operator and Gateway API CRDs and the Gateway the routes
attach to. The stacks use an operator already present (``monitoring.install:
false``: the charts cannot be fetched here). No kubelet runs their pods: a
stand-in (tests/kube_controllers.py) makes each Deployment's pods ready a moment
after it changes, so the provider's readiness await runs as on a real cluster
(production refuses ``kubernetes.skipAwait``), and a route's change can be held
against the readiness of the Deployments it waits for. Each stack deploys into a
namespace of its own. What is checked is what the API server stored after
admission: defaults, CEL rules and immutable fields included; and that the
rendered pods are admitted by Pod Security's ``restricted`` profile.
"""

from __future__ import annotations

import json
import time

import pytest

import figures
from engine import EngineProject, commit_all, engine_project, healthy_evidence, service, stage_history
from kube_cluster import start_cluster
from kube_controllers import Readiness
from rollout.gates.judge import NEXT_STAGE_ONLY

pytestmark = [pytest.mark.engine, pytest.mark.cluster]

SERVICE = "genesis"
NAMESPACES = {"staging": "rollout-staging", "production": "rollout-production"}
RELAY_IMAGE = "ghcr.io/example/rollout-relay@sha256:" + "ab" * 32
MONITORING_KINDS = {"PrometheusRule": "prometheusrules", "ServiceMonitor": "servicemonitors", "Probe": "probes"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = time.monotonic()
    running = start_cluster(tmp_path_factory.mktemp("cluster"))
    figures.count("test cluster", "seconds to start (etcd, kube-apiserver, CRDs, Gateway)",
                  round(time.monotonic() - started))
    running.readiness = Readiness(running.api(), tuple(NAMESPACES.values())).start()
    try:
        yield running
    finally:
        running.readiness.stop()
        running.stop()


@pytest.fixture(scope="module")
def deployed(cluster, tmp_path_factory) -> EngineProject:
    """staging 26 h into 10 %, production 26 h into 5 %, both up in the cluster."""
    project = engine_project(tmp_path_factory.mktemp("kube") / "project", {"KUBECONFIG": str(cluster.kubeconfig)})
    now = time.time()
    for stack, weights in (("staging", [0, 5, 10]), ("production", [0, 5])):
        def change(config: dict, stack=stack, weights=weights) -> None:
            config["rollout:monitoring"]["install"] = False
            config["rollout:kubernetes"]["namespace"] = NAMESPACES[stack]
            service(config)["rollout"]["history"] = stage_history(now, weights)
            if stack == "production":
                # The rollback relay with its fast path (its RBAC is what the test exercises).
                config["rollout:rollback"] = {"fastPath": True, "relay": {"image": RELAY_IMAGE, "repository": "example/rollout"}}
                for name in ("relayToken", "relayForgeToken"):
                    config["rollout:secrets"][name] = dict(config["rollout:secrets"]["smtpPassword"])

        project.edit(stack, change)
    commit_all(project.path, "staging at 10 %, production at 5 %")
    for stack in ("staging", "production"):
        project.init(stack)
        started = time.monotonic()
        up = project.up(stack)
        assert up.returncode == 0, up.stdout + up.stderr
        figures.count("test cluster", f"seconds for the first up of {stack}", round(time.monotonic() - started))
    return project


def route_weights(cluster, stack: str) -> dict[str, int]:
    route = cluster.custom().get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NAMESPACES[stack], "httproutes", SERVICE)
    return {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}


def declared(project: EngineProject, stack: str) -> list[dict]:
    exported = project.pulumi("stack", "export", "-s", stack)
    assert exported.returncode == 0, exported.stderr
    return json.loads(exported.stdout)["deployment"]["resources"]


def test_staging_and_production_are_admitted_as_declared(cluster, deployed):
    assert route_weights(cluster, "staging") == {f"{SERVICE}-stable": 90, f"{SERVICE}-canary": 10}
    assert route_weights(cluster, "production") == {f"{SERVICE}-stable": 95, f"{SERVICE}-canary": 5}
    custom = cluster.custom()
    for stack in ("staging", "production"):
        seen = 0
        for resource in declared(deployed, stack):
            kind = resource["type"].rsplit(":", 1)[-1]
            if not resource["type"].startswith("kubernetes:monitoring.coreos.com/v1:") or kind not in MONITORING_KINDS:
                continue
            name = resource["outputs"]["metadata"]["name"]
            stored = custom.get_namespaced_custom_object(
                "monitoring.coreos.com", "v1", NAMESPACES[stack], MONITORING_KINDS[kind], name)
            assert stored["metadata"]["name"] == name
            seen += 1
        # Rules, a ServiceMonitor per service, a Probe per track.
        assert seen >= 4, f"{stack}: {seen} monitoring objects"
        figures.count("test cluster", f"monitoring objects admitted ({stack})", seen)


def test_the_monitoring_path_an_existing_operator_needs_is_admitted(cluster, deployed):
    """Everything but the operator itself: the routing as an AlertmanagerConfig with the
    Secret it references, the blackbox exporter its Probes point at, all read back."""
    from kubernetes import client

    custom, core, apps = cluster.custom(), client.CoreV1Api(cluster.api()), client.AppsV1Api(cluster.api())
    for stack, namespace in NAMESPACES.items():
        routing = custom.get_namespaced_custom_object("monitoring.coreos.com", "v1alpha1", namespace, "alertmanagerconfigs", "rollout")
        assert routing["metadata"]["labels"] == {"release": f"rollout-{stack}"}
        receivers = {r["name"]: r for r in routing["spec"]["receivers"]}
        assert {"watchdog", "slack-warnings", "slack-deployments", "email", "rollback-webhook"} <= set(receivers)
        secret = core.read_namespaced_secret("rollout-alertmanager", namespace)
        referenced = {
            value["key"] for receiver in receivers.values() for integration in receiver.values() if isinstance(integration, list)
            for item in integration for value in [*item.values(), *item.get("httpConfig", {}).get("authorization", {}).values()]
            if isinstance(value, dict) and value.get("name") == "rollout-alertmanager"
        }
        assert referenced and referenced <= set(secret.data), (stack, referenced, sorted(secret.data))
        if stack == "production":
            # The relay's bearer token travels in the Secret, referenced by the webhook.
            webhook = receivers["rollback-webhook"]["webhookConfigs"][0]
            assert webhook["httpConfig"]["authorization"]["credentials"] == {"name": "rollout-alertmanager", "key": "relayToken"}
            assert webhook["url"] == f"http://rollout-relay.{namespace}.svc:8080/webhook"
        exporter = core.read_namespaced_service("prometheus-blackbox-exporter", namespace)
        apps.read_namespaced_deployment("prometheus-blackbox-exporter", namespace)
        port = exporter.spec.ports[0].port
        probes = custom.list_namespaced_custom_object("monitoring.coreos.com", "v1", namespace, "probes")["items"]
        assert probes and {p["spec"]["prober"]["url"] for p in probes} == {f"prometheus-blackbox-exporter.{namespace}.svc:{port}"}
        rules = custom.list_namespaced_custom_object("monitoring.coreos.com", "v1", namespace, "prometheusrules")["items"]
        # Every rule the stack loads carries its namespace: a shared Prometheus keeps the stacks apart.
        assert all(rule["labels"]["namespace"] == namespace for r in rules for g in r["spec"]["groups"] for rule in g["rules"])


def test_a_second_preview_shows_no_diff(deployed):
    """Nothing the API server defaulted or changed on admission shows up as a change."""
    for stack in ("staging", "production"):
        # --refresh reads the live objects first: a field the API server
        # defaulted or rewrote would show as a diff against the program.
        again = deployed.pulumi("preview", "-s", stack, "--refresh", "--expect-no-changes", "--diff")
        assert again.returncode == 0, again.stdout + again.stderr


def test_advance_preview_up_then_rollback_up_and_a_skipped_stage_changes_nothing(cluster, deployed, tmp_path):
    project = deployed
    # A skipped stage (10 -> 50) is refused by the pack, in preview and in up,
    # and the route stays where it was.
    before = project.stack_file("staging").read_text()
    project.edit("staging", lambda c: service(c)["rollout"]["history"].append(
        {"weight": 50, "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    try:
        refused = project.preview("staging")
        assert refused.returncode != 0 and NEXT_STAGE_ONLY in refused.stdout + refused.stderr, refused.stdout
        refused_up = project.up("staging")
        assert refused_up.returncode != 0 and NEXT_STAGE_ONLY in refused_up.stdout + refused_up.stderr
    finally:
        project.stack_file("staging").write_text(before)
    assert route_weights(cluster, "staging") == {f"{SERVICE}-stable": 90, f"{SERVICE}-canary": 10}

    # The cycle users run: evidence -> advance -> preview -> up.
    evidence = healthy_evidence(project, "staging", tmp_path)
    advanced = project.rollout("advance", "--stack", "staging", "--service", SERVICE, "--evidence", str(evidence))
    assert advanced.returncode == 0, advanced.stdout + advanced.stderr
    config = project.policy_config("staging", "--evidence", str(evidence))
    previewed = project.preview("staging", "--policy-pack-config", str(config))
    assert previewed.returncode == 0, previewed.stdout + previewed.stderr
    up = project.up("staging", "--policy-pack-config", str(config))
    assert up.returncode == 0, up.stdout + up.stderr
    assert route_weights(cluster, "staging") == {f"{SERVICE}-stable": 75, f"{SERVICE}-canary": 25}
    commit_all(project.path, "staging at 25 %")

    # rollback -> up: the canary takes no traffic.
    rolled = project.rollout("rollback", "--stack", "staging", "--service", SERVICE, "--reason", "cluster test")
    assert rolled.returncode == 0, rolled.stderr
    back = project.up("staging", "--policy-pack-config", str(project.policy_config("staging", "--rollback")))
    assert back.returncode == 0, back.stdout + back.stderr
    assert route_weights(cluster, "staging") == {f"{SERVICE}-stable": 100, f"{SERVICE}-canary": 0}
    commit_all(project.path, "staging rolled back")


def test_a_route_changed_behind_pulumis_back_shows_in_a_refreshed_preview_and_up_restores_it(cluster, deployed):
    """What a second field manager (an operator, or the rollback relay's fast path)
    writes to the route is seen by a refreshed preview, and the next up wins."""
    custom = cluster.custom()
    patch = {"spec": {"rules": [{"backendRefs": [
        {"name": f"{SERVICE}-stable", "port": 8080, "weight": 100},
        {"name": f"{SERVICE}-canary", "port": 8080, "weight": 0},
    ]}]}}
    current = route_weights(cluster, "production")
    # A server-side apply under a field manager of its own, forcing ownership.
    custom.patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NAMESPACES["production"], "httproutes", SERVICE,
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": SERVICE, "namespace": NAMESPACES["production"]}, **patch},
        field_manager="rollout-test", force=True, _content_type="application/apply-patch+yaml",
    )
    assert route_weights(cluster, "production") == {f"{SERVICE}-stable": 100, f"{SERVICE}-canary": 0}
    drift = deployed.pulumi("preview", "-s", "production", "--refresh", "--expect-no-changes")
    assert drift.returncode != 0, drift.stdout
    restored = deployed.up("production", "--refresh")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert route_weights(cluster, "production") == current


def test_the_relays_fast_path_takes_the_canary_out_with_only_its_rbac_and_the_gates_hold_until_the_rollback(
        cluster, deployed, tmp_path, monkeypatch):
    """The relay's route update, made with the token of the ServiceAccount the program
    deployed (so with exactly its Role), against the real API server; then the gates see
    the live route, and the rollback's up takes the route back."""
    import asyncio
    from urllib.parse import urlsplit

    from kubernetes import client

    from rollout.ops.fastpath import FIELD_MANAGER, SERVICE_ACCOUNT_DIR_ENV, RouteError, RouteUpdater
    from rollout.gates.judge import LIVE_ROUTE_RESPECTED

    namespace = NAMESPACES["production"]
    core = client.CoreV1Api(cluster.api())
    minted = core.create_namespaced_service_account_token(
        "rollout-relay", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[cluster.server], expiration_seconds=600)))
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(minted.status.token)
    (account / "ca.crt").write_bytes((cluster.workdir / "pki" / "ca.crt").read_bytes())
    (account / "namespace").write_text(namespace)
    server = urlsplit(cluster.server)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", server.hostname)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    monkeypatch.setenv(SERVICE_ACCOUNT_DIR_ENV, str(account))

    def run(updater, name):
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(updater(name))
        finally:
            loop.run_until_complete(updater.close())
            loop.close()

    assert route_weights(cluster, "production") == {f"{SERVICE}-stable": 95, f"{SERVICE}-canary": 5}
    started = time.monotonic()
    run(RouteUpdater.in_cluster(), SERVICE)
    figures.count("test cluster", "milliseconds for the relay's route update", round(1000 * (time.monotonic() - started)))
    assert route_weights(cluster, "production") == {f"{SERVICE}-stable": 100, f"{SERVICE}-canary": 0}
    stored = cluster.custom().get_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace, "httproutes", SERVICE)
    assert FIELD_MANAGER in {entry["manager"] for entry in stored["metadata"]["managedFields"]}
    # Its Role names the stack's routes in its own namespace, nothing else.
    with pytest.raises(RouteError, match="HTTP 403"):
        run(RouteUpdater.in_cluster(namespace=NAMESPACES["staging"]), SERVICE)

    # The stack file still gives the canary 5 %: with the live route as evidence,
    # the pack refuses the up that would give it traffic again.
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps(cluster.custom().list_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes")))
    evidence = healthy_evidence(deployed, "production", tmp_path, "--live-routes", str(routes))
    refused = deployed.preview("production", "--policy-pack-config",
                               str(deployed.policy_config("production", "--evidence", str(evidence))))
    assert refused.returncode != 0 and LIVE_ROUTE_RESPECTED in refused.stdout + refused.stderr, refused.stdout
    assert route_weights(cluster, "production") == {f"{SERVICE}-stable": 100, f"{SERVICE}-canary": 0}

    # The rollback the relay dispatched: recorded, deployed, the route back in the program's hands.
    rolled = deployed.rollout("rollback", "--stack", "production", "--service", SERVICE, "--reason", "fast path")
    assert rolled.returncode == 0, rolled.stderr
    back = deployed.up("production", "--policy-pack-config", str(deployed.policy_config("production", "--rollback")))
    assert back.returncode == 0, back.stdout + back.stderr
    assert route_weights(cluster, "production") == {f"{SERVICE}-stable": 100, f"{SERVICE}-canary": 0}
    clean = deployed.pulumi("preview", "-s", "production", "--refresh", "--expect-no-changes")
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_rendered_pods_are_admitted_by_pod_security_restricted_and_a_soft_one_is_refused(cluster, deployed):
    """Each service Deployment's pod, as rendered, created in a namespace that enforces Pod
    Security's restricted profile: admitted; the same pod without its securityContext: refused."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from rollout.build.traffic import manifests
    from rollout.load.stack import load_stack

    core = client.CoreV1Api(cluster.api())
    namespace = "restricted-pods"
    core.create_namespace({"metadata": {"name": namespace, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}})
    admitted = 0
    for stack in ("staging", "production"):
        config = load_stack(stack, deployed.path)
        for service_config in config.services:
            for name, manifest in manifests(config, service_config).items():
                if manifest["kind"] != "Deployment":
                    continue
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": f"{stack}-{manifest['metadata']['name']}", "namespace": namespace},
                       "spec": manifest["spec"]["template"]["spec"]}
                core.create_namespaced_pod(namespace, pod)
                admitted += 1
                soft = json.loads(json.dumps(pod))
                soft["metadata"]["name"] += "-soft"
                soft["spec"].pop("securityContext")
                soft["spec"]["containers"][0].pop("securityContext")
                with pytest.raises(ApiException) as refused:
                    core.create_namespaced_pod(namespace, soft)
                assert refused.value.status == 403 and "violates PodSecurity" in refused.value.body
    assert admitted == 4
    figures.count("test cluster", "rendered pods admitted by Pod Security restricted", admitted)


def _route_watch(cluster, stack: str, stop):
    """(monotonic time, canary weight) at each change of the stack's route, until ``stop`` is set;
    and ``caught_up()``, which returns once a poll that began after the call has read the route
    (an ``up`` may end moments after it moved the route: read the changes after that)."""
    changes = []
    read_from = [0.0]  # when the latest completed poll began

    def poll():
        last = None
        while not stop.is_set():
            began = time.monotonic()
            weight = route_weights(cluster, stack)[f"{SERVICE}-canary"]
            if weight != last:
                changes.append((time.monotonic(), weight))
                last = weight
            read_from[0] = began
            time.sleep(0.05)

    def caught_up(timeout: float = 30.0) -> None:
        since, deadline = time.monotonic(), time.monotonic() + timeout
        while read_from[0] < since:
            assert time.monotonic() < deadline and thread.is_alive(), "the route watch stopped reading the route"
            time.sleep(0.02)

    import threading

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return changes, thread, caught_up


def _latest(readiness, namespace: str, name: str, table: dict) -> float | None:
    """When the stand-in first saw (``readiness.seen``) or made ready (``readiness.ready``) the
    Deployment's latest generation; None when it has not made that generation ready yet."""
    key = max((k for k in readiness.seen if k[:2] == (namespace, name)), key=lambda k: k[2])
    return table.get(key)


@pytest.mark.parametrize("lagging, stable_replicas", [(False, 4), (True, 5)], ids=["in-step", "lagging-replica-sets"])
def test_traffic_follows_readiness_on_the_api_server(cluster, deployed, lagging, stable_replicas):
    """A weight going up lands on the route only after the Deployments whose pods take it are ready;
    a weight going down moves the route first and scales the canary after it. Without the route's
    dependencies the engine would apply all three at once, and the route would change first.

    ``lagging-replica-sets``: the Deployments' status observes the new generation at once and stays
    "available" while their ReplicaSets still show the old replica count (Readiness.lagging_replica_sets).
    The provider's built-in Deployment await takes that as done and the route moves at once; the
    tracks' ``pulumi.com/waitFor`` conditions count the pods (rollout.build.traffic.rollout_complete)."""
    import threading

    project, readiness, namespace = deployed, cluster.readiness, NAMESPACES["staging"]
    before = project.stack_file("staging").read_text()
    readiness.delay, readiness.lagging_replica_sets = 3.0, lagging
    stop = threading.Event()
    changes, thread, caught_up = _route_watch(cluster, "staging", stop)
    try:
        def up_to(config):
            # Both tracks' Deployments change with the weight (a replica count each run has not had).
            service(config)["stable"]["replicas"] = stable_replicas
            service(config)["rollout"]["history"].append(
                {"weight": 50, "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

        project.edit("staging", up_to)
        up = project.pulumi("up", "-s", "staging", "--yes")
        assert up.returncode == 0, up.stdout + up.stderr
        caught_up()
        moved = next(at for at, weight in changes if weight == 50)
        for track in ("stable", "canary"):
            # The stand-in makes a new generation's pods ready `delay` (3 s) after it first sees it. The
            # route moving at least half that after both Deployments changed shows the engine waited for
            # the pods; a route that followed the Deployments' apply alone would move within a moment.
            # (Its ready stamp, taken in another thread of this process, is compared within 0.5 s: the
            # provider's watch can see the status before the stand-in's thread is scheduled again.)
            seen = _latest(readiness, namespace, f"{SERVICE}-{track}", readiness.seen)
            ready = _latest(readiness, namespace, f"{SERVICE}-{track}", readiness.ready)
            assert moved - seen >= readiness.delay / 2, \
                f"the route moved {moved - seen:.2f}s after {track}'s Deployment changed: before its pods were ready"
            assert ready is not None, f"the route moved before {track}'s new pods were ready at all"
            assert moved >= ready - 0.5, f"the route moved {ready - moved:.2f}s before {track}'s pods were ready"

        if not lagging:  # on the way down the canary follows the route, however its scale shows
            # A rollback of a release whose pods fail: the canary's new pods never become ready, and
            # the up that takes it out of traffic ends anyway (well within the provider's 10 minutes).
            readiness.stuck.add(f"{SERVICE}-canary")
            project.edit("staging", lambda c: service(c)["rollout"]["history"].append(
                {"weight": 0, "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "reason": "order"}))
            down = project.pulumi("up", "-s", "staging", "--yes", timeout=240)
            assert down.returncode == 0, down.stdout + down.stderr
            caught_up()
            left = next(at for at, weight in changes if weight == 0 and at > moved)
            scaled = _latest(readiness, namespace, f"{SERVICE}-canary", readiness.seen)
            assert scaled >= left, f"the canary scaled down {left - scaled:.2f}s before the route moved off it"
        assert readiness.errors == []
    finally:
        stop.set()
        thread.join(timeout=5)
        readiness.delay, readiness.lagging_replica_sets = 0.5, False
        readiness.stuck.clear()
        project.stack_file("staging").write_text(before)
