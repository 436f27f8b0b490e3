"""The relay on Kubernetes stacks (rollout:rollback.relay) and the fast path's patch and RBAC.

The live patch against a Kubernetes API server is not here: it needs a real API
server in the tests. What is tested is what the relay would send (the JSON
Patch) and what it is allowed to do (the Role).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import edit_stack, without_secrets
from rollout.build import traffic
from rollout.build.alertmanager import alertmanager_config
from rollout.build.relay_objects import rbac_objects
from rollout.ops.fastpath import FIELD_MANAGER, RouteError, canary_out_patch, live_canary_weight
from rollout.engine.harness import run_program
from rollout.load.stack import load_file
from rollout.build.render import render

DIGEST = "ghcr.io/example/rollout-relay@sha256:" + "ab" * 32
ROLLOUT = str(Path(sys.executable).with_name("rollout"))


def with_relay(project: Path, stack: str = "production", **relay) -> Path:
    def change(c):
        c["rollout:rollback"] = {"relay": {"image": DIGEST, "repository": "example/rollout", **relay}}
        c["rollout:secrets"]["relayToken"] = dict(c["rollout:secrets"]["smtpPassword"])  # real ciphertext, never decrypted here
        c["rollout:secrets"]["relayForgeToken"] = dict(c["rollout:secrets"]["smtpPassword"])  # real ciphertext, never decrypted here

    return edit_stack(project, stack, change)


def _config(project, stack="production"):
    return load_file(project / "stacks" / f"Pulumi.{stack}.yaml", project)


def _rendered(project, tmp_path, stack="production") -> dict[str, dict]:
    render(_config(project, stack), stack, tmp_path / "out")
    return {p.name: yaml.safe_load(p.read_text()) for p in (tmp_path / "out" / "kubernetes").glob("rollout-relay-*.yaml")}


def test_production_renders_the_relay_with_the_fast_path_and_its_rbac(project, tmp_path):
    with_relay(project)
    files = _rendered(project, tmp_path)
    assert set(files) == {
        f"rollout-relay-{kind}.yaml"
        for kind in ("secret", "deployment", "service", "networkpolicy", "poddisruptionbudget", "serviceaccount", "role", "rolebinding")
    }
    for document in files.values():
        kubernetes_validate.validate(document, "1.33", strict=True)
    (container,) = files["rollout-relay-deployment.yaml"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == DIGEST
    assert container["args"][:5] == ["--project", "/app", "relay", "--stack", "production"]
    assert "--fast-path" in container["args"]
    assert container["envFrom"] == [{"secretRef": {"name": "rollout-relay"}}]
    # Its rollout is awaited as the tracks' are: every replica of the new generation available.
    deployment = files["rollout-relay-deployment.yaml"]
    replicas = deployment["spec"]["replicas"]
    assert json.loads(deployment["metadata"]["annotations"][traffic.WAIT_FOR]) == [
        f"jsonpath={{.status.{field}}}={replicas}" for field in ("updatedReplicas", "replicas", "availableReplicas")]
    # The tokens are only in the Secret, rendered as placeholders.
    assert files["rollout-relay-secret.yaml"]["stringData"] == {
        "ROLLOUT_RELAY_TOKEN": "<secret:rollout:secrets.relayToken>",
        "GITHUB_TOKEN": "<secret:rollout:secrets.relayForgeToken>",
    }
    (rule,) = files["rollout-relay-role.yaml"]["rules"]
    assert rule == {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "resourceNames": ["genesis"], "verbs": ["get", "patch"]}


def test_only_alertmanager_and_prometheus_may_reach_the_relay(project, tmp_path):
    with_relay(project)
    policy = _rendered(project, tmp_path)["rollout-relay-networkpolicy.yaml"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    sources = [rule["from"] for rule in policy["spec"]["ingress"]]
    assert sources == [
        [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "alertmanager", "alertmanager": "rollout-production-alertmanager"}}}],
        [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus", "prometheus": "rollout-production-prometheus"}}}],
    ]


def test_with_an_existing_operator_only_its_namespaces_alertmanager_and_prometheus_may_reach_the_relay(project, tmp_path):
    with_relay(project)
    edit_stack(project, "production", lambda c: c["rollout:monitoring"].update(install=False, existing={"namespace": "observability"}))
    policy = _rendered(project, tmp_path)["rollout-relay-networkpolicy.yaml"]
    namespace = {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}
    assert [rule["from"] for rule in policy["spec"]["ingress"]] == [
        [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}}, "namespaceSelector": namespace}],
        [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}, "namespaceSelector": namespace}],
    ]


def test_staging_has_no_fast_path_by_default_and_so_no_kubernetes_api_access(project, tmp_path):
    with_relay(project, "staging")
    files = _rendered(project, tmp_path, "staging")
    assert "rollout-relay-role.yaml" not in files
    pod = files["rollout-relay-deployment.yaml"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert "--fast-path" not in pod["containers"][0]["args"]


def test_alertmanager_posts_to_the_relays_service_with_the_bearer_token(project):
    with_relay(project)
    (receiver,) = [r for r in alertmanager_config(_config(project))["receivers"] if r["name"] == "rollback-webhook"]
    assert receiver["webhook_configs"] == [
        {
            "url": "http://rollout-relay.rollout-production.svc:8080/webhook",
            "send_resolved": False,
            "http_config": {"authorization": {"type": "Bearer", "credentials": "<secret:rollout:secrets.relayToken>"}},
        }
    ]


def test_the_program_declares_the_relay_and_keeps_its_tokens_secret(project):
    with_relay(project)
    marker = "relay-forge-token-7f3e"
    run = run_program("production", project, secret_values={"relayForgeToken": marker})
    kinds = {r.type for r in run.resources if r.name.startswith("rollout-relay")}
    assert kinds >= {
        "rollout:rollback:Relay", "kubernetes:core/v1:Secret", "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy", "kubernetes:rbac.authorization.k8s.io/v1:Role",
    }
    (secret,) = [r for r in run.resources if r.type == "kubernetes:core/v1:Secret" and r.name.startswith("rollout-relay")]
    assert secret.inputs["stringData"]["GITHUB_TOKEN"] == marker
    for resource in run.resources:
        assert marker not in json.dumps(without_secrets(resource.inputs, resource.secret_paths)), resource.name


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda c: c["rollout:rollback"]["relay"].update(image="ghcr.io/example/rollout-relay:1.0"),
         "rollout:rollback.relay.image: 'ghcr.io/example/rollout-relay:1.0' is not an image pinned by digest"),
        (lambda c: c["rollout:secrets"].pop("relayForgeToken"),
         "rollout:secrets.relayForgeToken: is required (a secret) because rollback.relay is set"),
        (lambda c: c["rollout:rollback"]["relay"].update(repository="no-owner"), "rollout:rollback.relay.repository"),
    ],
)
def test_a_bad_relay_config_is_exit_2_naming_the_key(project, change, expected):
    with_relay(project)
    edit_stack(project, "production", change)
    done = subprocess.run([ROLLOUT, "--project", str(project), "check", "--stack", "production"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_fast_path_needs_a_relay(project):
    edit_stack(project, "staging", lambda c: c.update({"rollout:rollback": {"fastPath": True}}))
    done = subprocess.run([ROLLOUT, "--project", str(project), "check", "--stack", "staging"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "rollout:rollback.fastPath: true needs rollback.relay" in done.stderr


# --- the fast path's patch -------------------------------------------------------------


def _live_route(project, weight: int) -> dict:
    config = _config(project, "staging")
    (service,) = config.services
    route = traffic.http_route(config, service)
    for backend in route["spec"]["rules"][0]["backendRefs"]:
        backend["weight"] = 100 - weight if backend["name"].endswith("-stable") else weight
    route["metadata"]["resourceVersion"] = "4711"
    return route


def _apply(route: dict, patch: list[dict]) -> dict:
    """RFC 6902 add/test, as the API server applies them (enough for these ops)."""
    route = json.loads(json.dumps(route))
    for op in patch:
        *parents, leaf = [int(p) if p.isdigit() else p for p in op["path"].strip("/").split("/")]
        target = route
        for part in parents:
            target = target[part]
        if op["op"] == "test":
            assert target[leaf] == op["value"]
        else:
            target[leaf] = op["value"]
    return route


def test_the_patch_takes_the_canary_out_of_traffic_and_tests_the_resource_version(project):
    route = _live_route(project, 25)
    patch = canary_out_patch(route, "genesis")
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "4711"}
    assert sorted(op["value"] for op in patch[1:]) == [0, 100]
    patched = _apply(route, patch)
    assert live_canary_weight(route, "genesis") == 25
    assert live_canary_weight(patched, "genesis") == 0
    # Everything but the weights stays as it was.
    for before, after in zip(route["spec"]["rules"][0]["backendRefs"], patched["spec"]["rules"][0]["backendRefs"]):
        assert {k: v for k, v in before.items() if k != "weight"} == {k: v for k, v in after.items() if k != "weight"}


def test_a_route_already_without_canary_traffic_is_left_alone(project):
    assert canary_out_patch(_live_route(project, 0), "genesis") == []


def test_a_route_without_the_services_backends_is_refused(project):
    route = _live_route(project, 10)
    with pytest.raises(RouteError):
        canary_out_patch(route, "exodus")


def test_the_relay_may_only_get_and_patch_the_named_routes():
    account, role, binding = rbac_objects("rollout", ["genesis", "exodus"])
    assert role["rules"] == [
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "resourceNames": ["exodus", "genesis"], "verbs": ["get", "patch"]}
    ]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "rollout"}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert FIELD_MANAGER == "rollout-relay"


def test_the_live_routes_as_kubectl_lists_them_become_evidence(project, tmp_path):
    from rollout.ops.fastpath import live_routes

    route = _live_route(project, 10)
    patched = _apply(route, canary_out_patch(route, "genesis"))
    patched["metadata"]["managedFields"] = [{"manager": "pulumi-kubernetes"}, {"manager": FIELD_MANAGER, "operation": "Update"}]
    document = {"apiVersion": "v1", "kind": "List", "items": [patched]}
    assert live_routes(document, ["genesis", "exodus"]) == {"genesis": {"canaryWeight": 0, "setByRelay": True, "managedFields": True}, "exodus": None}
    shown = "managedFields" in route["metadata"]
    assert live_routes({"kind": "List", "items": [route]}, ["genesis"]) == {
        "genesis": {"canaryWeight": 10, "setByRelay": False, "managedFields": shown}}
    with pytest.raises(ValueError):
        live_routes(["not", "routes"], ["genesis"])

    # rollout evidence records them; an unreadable file is exit 2 with one line.
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps(document))
    out = tmp_path / "evidence.json"
    state = tmp_path / "state.json"
    from rollout.model.state import rollout_state

    state.write_text(json.dumps(rollout_state(_config(project, "staging"), "staging"), default=str))
    base = [ROLLOUT, "--project", str(project), "evidence", "--stack", "staging", "--prometheus", "http://127.0.0.1:9",
            "--deployed-state", str(state), "--deadline", "0.2", "--timeout", "0.1"]
    done = subprocess.run([*base, "--live-routes", str(routes), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["services"]["genesis"]["liveRoute"] == {"canaryWeight": 0, "setByRelay": True,
                                                                             "managedFields": True}
    routes.write_text("[1, 2]")
    done = subprocess.run([*base, "--live-routes", str(routes)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "--live-routes" in done.stderr
