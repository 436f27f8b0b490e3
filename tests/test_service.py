"""CanaryService under Pulumi's mocks: tracks, probes, resources, budgets, the traffic split."""

from __future__ import annotations

import json
from functools import lru_cache

import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import FIXTURE, KUBERNETES_STACKS, STACKS, edit_stack
from upstream import crd_schema
from rollout.engine.harness import run_program
from rollout.load.stack import load_stack

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


@pytest.fixture(scope="module")
def runs():
    return {stack: run_program(stack, FIXTURE) for stack in STACKS}


def _manifest(resource) -> dict:
    group_version, kind = resource.type.split(":")[1], resource.type.split(":")[2]
    group, _, version = group_version.rpartition("/")
    return {"apiVersion": version if group == "core" else f"{group}/{version}", "kind": kind, **resource.inputs}


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_each_track_has_a_deployment_and_a_service_under_the_component(runs, stack):
    run = runs[stack]
    config = load_stack(stack, FIXTURE)
    service = config.services[0]
    deployments = {r.name: r for r in run.of_type(DEPLOYMENT)}
    assert set(deployments) == {"genesis-stable", "genesis-canary"}
    for track, settings in (("stable", service.stable), ("canary", service.canary)):
        deployment = deployments[f"genesis-{track}"]
        assert deployment.parent_name == "genesis"
        spec = deployment.inputs["spec"]
        assert spec["replicas"] == settings.replicas
        (container,) = spec["template"]["spec"]["containers"]
        assert container["image"] == settings.image
        assert container["readinessProbe"]["httpGet"]["path"] == service.health.path
        assert container["livenessProbe"]["httpGet"]["path"] == service.health.path
        assert container["resources"]["limits"]["memory"] == service.resources.limits.memory
        assert {"name": "ROLLOUT_TRACK", "value": track} in container["env"]
    services = {r.name for r in run.of_type(SERVICE)}
    assert services == {"genesis-stable-service", "genesis-canary-service"}


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_each_deployment_waits_for_all_its_pods_of_the_new_generation(project, stack):
    """The provider's waitFor conditions, not its built-in await (which can finish on the previous
    generation's status): the counts of this spec's replicas, checked once the generation is observed.
    Every Deployment of our own: the tracks, and with an existing operator the blackbox exporter and
    the relay (the charts' Deployments are the charts' own)."""
    from test_relay_objects import with_relay

    with_relay(project, stack)
    edit_stack(project, stack, lambda c: c["rollout:monitoring"].update(install=False))
    deployments = {r.inputs["metadata"]["name"]: r for r in run_program(stack, project).of_type(DEPLOYMENT)}
    assert {"genesis-stable", "genesis-canary", "rollout-relay", "prometheus-blackbox-exporter"} <= set(deployments)
    for deployment in deployments.values():
        replicas = int(deployment.inputs["spec"]["replicas"])  # the mocks hand numbers back as floats
        assert replicas > 0
        conditions = json.loads(deployment.inputs["metadata"]["annotations"]["pulumi.com/waitFor"])
        assert conditions == [f"jsonpath={{.status.{field}}}={replicas}"
                              for field in ("updatedReplicas", "replicas", "availableReplicas")]


def test_a_promoted_canary_at_zero_replicas_waits_for_its_generation_only(project):
    """Kubernetes omits a zero count from the status, so a condition on it would never hold."""
    from rollout.build import traffic
    from rollout.model.time import format_time, utc_now

    def promote(config):
        service = config["rollout:services"][0]
        service["canary"]["image"] = service["stable"]["image"]
        service["rollout"]["history"].append({"weight": 0, "startedAt": format_time(utc_now()), "reason": "promoted"})

    edit_stack(project, "staging", promote)
    config = load_stack("staging", project)
    canary = traffic.deployment(config, config.services[0], "canary")
    assert canary["spec"]["replicas"] == 0
    assert json.loads(canary["metadata"]["annotations"][traffic.WAIT_FOR]) == ["jsonpath={.status.observedGeneration}"]


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_the_flag_configmap_is_mounted_as_a_directory_never_a_subpath(runs, stack):
    for deployment in runs[stack].of_type(DEPLOYMENT):
        pod = deployment.inputs["spec"]["template"]["spec"]
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "flags"]
        assert mount["mountPath"] == "/etc/flagd" and "subPath" not in mount
        assert {"name": "flags", "configMap": {"name": "rollout-flags"}} in pod["volumes"]
        # The only other volume is the writable /tmp of a read-only root file system.
        assert [v["name"] for v in pod["volumes"]] == ["flags", "tmp"]


def test_only_production_declares_disruption_budgets(runs):
    assert {r.name for r in runs["production"].of_type(PDB)} == {"genesis-stable-pdb", "genesis-canary-pdb"}
    for stack in ("dev", "staging"):
        assert runs[stack].of_type(PDB) == []


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_the_route_splits_traffic_stable_100_minus_w_and_canary_w(runs, stack):
    weight = load_stack(stack, FIXTURE).services[0].rollout.weight
    (route,) = runs[stack].of_type(ROUTE)
    backends = {b["name"]: b["weight"] for b in route.inputs["spec"]["rules"][0]["backendRefs"]}
    assert backends == {"genesis-stable": 100 - weight, "genesis-canary": weight}
    gateway = load_stack(stack, FIXTURE).kubernetes.gateway
    (parent,) = route.inputs["spec"]["parentRefs"]
    assert (parent["name"], parent["namespace"]) == (gateway.name, gateway.namespace)


def test_a_rollback_to_zero_sends_the_canary_no_traffic_but_keeps_its_pods(project):
    from rollout.model.time import format_time, utc_now

    edit_stack(
        project,
        "staging",
        lambda c: c["rollout:services"][0]["rollout"]["history"].append(
            {"weight": 0, "startedAt": format_time(utc_now()), "reason": "error budget"}
        ),
    )
    run = run_program("staging", project)
    (route,) = run.of_type(ROUTE)
    backends = {b["name"]: b["weight"] for b in route.inputs["spec"]["rules"][0]["backendRefs"]}
    assert backends == {"genesis-stable": 100, "genesis-canary": 0}
    canary = [r for r in run.of_type(DEPLOYMENT) if r.name == "genesis-canary"][0]
    assert canary.inputs["spec"]["replicas"] == load_stack("staging", FIXTURE).services[0].canary.replicas


def test_a_canary_leaving_traffic_is_awaited_only_until_observed(project):
    """A rollback takes traffic off the canary's pods, the ones that failed: its up must not wait
    for them to become ready. Stable, which takes the traffic, is waited for in full."""
    from rollout.build import traffic
    from rollout.model.time import format_time, utc_now

    edit_stack(project, "staging", lambda c: c["rollout:services"][0]["rollout"]["history"].append(
        {"weight": 0, "startedAt": format_time(utc_now()), "reason": "error budget"}))
    config = load_stack("staging", project)
    service = config.services[0]
    assert traffic.canary_leaving(service)
    waits = {track: json.loads(traffic.deployment(config, service, track)["metadata"]["annotations"][traffic.WAIT_FOR])
             for track in ("stable", "canary")}
    assert waits["canary"] == ["jsonpath={.status.observedGeneration}"]
    assert waits["stable"] == traffic.rollout_complete(service.stable.replicas)


@lru_cache(maxsize=1)
def _httproute_schema() -> dict:
    return crd_schema("gateway.networking.k8s.io", "httproutes")


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_the_rendered_httproute_validates_against_the_gateway_api_crd(runs, stack):
    (route,) = runs[stack].of_type(ROUTE)
    jsonschema.Draft7Validator(_httproute_schema()).validate(_manifest(route))


def test_the_httproute_schema_check_catches_a_negative_weight():
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "x"},
             "spec": {"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": -1}]}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(_httproute_schema()).validate(route)


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_deployments_services_and_budgets_validate_with_kubernetes_validate(runs, stack):
    run = runs[stack]
    for resource in run.of_type(DEPLOYMENT) + run.of_type(SERVICE) + run.of_type(PDB):
        kubernetes_validate.validate(_manifest(resource), "1.33", strict=True)


def test_the_docker_stack_runs_both_tracks_on_their_own_loopback_ports(runs):
    config = load_stack("local", FIXTURE)
    containers = {r.name: r for r in runs["local"].of_type("docker:index/container:Container")}
    for track, port in (("stable", config.docker.ports.service_stable), ("canary", config.docker.ports.service_canary)):
        container = containers[f"genesis-{track}"]
        (published,) = container.inputs["ports"]
        assert (published["internal"], published["external"], published["ip"]) == (8080, port, "127.0.0.1")
        assert f"ROLLOUT_TRACK={track}" in container.inputs["envs"]
        assert container.inputs["memory"] == 512


def _declared_type(manifest: dict) -> str:
    group, _, version = manifest["apiVersion"].rpartition("/")
    return f"kubernetes:{group or 'core'}/{version}:{manifest['kind']}"


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_rollout_render_writes_every_object_the_program_declares_and_they_validate(runs, stack):
    """Every Kubernetes object the program declares has its rendered file with the same
    body (a Secret's values as placeholders), and nothing rendered is not declared."""
    from rollout.build.artifacts import build_artifacts

    config = load_stack(stack, FIXTURE)
    files = build_artifacts(config, stack).files
    rendered = [
        yaml.safe_load(text)
        for path, text in files.items()
        if path.startswith("kubernetes/") and not path.startswith("kubernetes/helm/")
    ]
    kinds = {_declared_type(m) for m in rendered}
    declared = {(r.type, r.inputs["metadata"]["name"]): r for r in runs[stack].resources if r.type in kinds}
    assert {"Namespace", "ConfigMap", "PrometheusRule", "ServiceMonitor", "Probe", "HTTPRoute", "Deployment"} <= {
        m["kind"] for m in rendered
    }
    assert len(rendered) == len(declared)
    for manifest in rendered:
        resource = declared[(_declared_type(manifest), manifest["metadata"]["name"])]
        for body in ("spec", "data"):
            if body in manifest:
                assert manifest[body] == resource.inputs[body], (manifest["kind"], manifest["metadata"]["name"])
        if manifest["kind"] == "Secret":
            assert set(manifest["stringData"]) == set(resource.inputs["stringData"])
            assert all(v.startswith("<secret:") or v == "admin" for v in manifest["stringData"].values())
        assert manifest["metadata"].get("namespace", config.kubernetes.namespace) == config.kubernetes.namespace
        for key in ("labels", "annotations"):
            assert manifest["metadata"].get(key) == resource.inputs["metadata"].get(key), manifest["metadata"]["name"]
        if manifest["kind"] == "HTTPRoute":
            jsonschema.Draft7Validator(_httproute_schema()).validate(manifest)
        elif manifest["apiVersion"] in ("v1", "apps/v1", "policy/v1"):
            kubernetes_validate.validate(manifest, "1.33", strict=True)


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_rollout_render_writes_the_values_of_each_chart_the_program_installs(runs, stack):
    from rollout.build.artifacts import build_artifacts

    files = build_artifacts(load_stack(stack, FIXTURE), stack).files
    charts = {r.inputs["chart"]: r for r in runs[stack].of_type("kubernetes:helm.sh/v4:Chart")}
    assert charts
    assert {p for p in files if p.startswith("kubernetes/helm/")} == {f"kubernetes/helm/{c}.values.yaml" for c in charts}
    for chart, resource in charts.items():
        text = files[f"kubernetes/helm/{chart}.values.yaml"]
        assert f"chart {chart} {resource.inputs['version']}" in text.splitlines()[1]
        values, declared = yaml.safe_load(text), dict(resource.inputs["values"])
        if chart == "kube-prometheus-stack":
            # The deployed Alertmanager config holds the decrypted credentials; the file, placeholders.
            for doc in (values, declared):
                doc["alertmanager"] = {k: v for k, v in doc["alertmanager"].items() if k != "config"}
            assert "<secret:" in text or "secret.invalid" in text
        assert values == declared


@pytest.mark.parametrize("stack", STACKS)
def test_no_rendered_file_holds_a_yaml_anchor_or_alias(stack):
    from rollout.build.artifacts import build_artifacts

    for path, text in build_artifacts(load_stack(stack, FIXTURE), stack).files.items():
        if path.endswith((".yaml", ".yml")):
            events = list(yaml.parse(text))
            assert not [e for e in events if getattr(e, "anchor", None)], path
            assert not [e for e in events if isinstance(e, yaml.AliasEvent)], path


def test_the_kubernetes_stacks_prometheus_yml_says_it_is_for_docker_only():
    from rollout.build.artifacts import build_artifacts

    kubernetes = build_artifacts(load_stack("staging", FIXTURE), "staging").files
    docker = build_artifacts(load_stack("local", FIXTURE), "local").files
    assert "For the Docker target only" in kubernetes["prometheus/prometheus.yml"].splitlines()[1]
    assert "Docker" not in docker["prometheus/prometheus.yml"].splitlines()[1]


def test_the_docker_stack_renders_no_kubernetes_objects():
    from rollout.build.artifacts import build_artifacts

    files = build_artifacts(load_stack("local", FIXTURE), "local").files
    assert not [path for path in files if path.startswith("kubernetes/")]
