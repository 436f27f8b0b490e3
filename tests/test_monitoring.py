"""The monitoring stack as the program declares it, under Pulumi's mocks.

Helm values are compared with the charts' own defaults (Helm ignores unknown
keys silently); core kinds are validated by kubernetes-validate, and custom
resources by the CRD schemas of the prometheus-operator release the chart uses.
"""

from __future__ import annotations

import json
from functools import lru_cache

import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import FIXTURE, KUBERNETES_STACKS, STACKS, edit_stack, without_secrets
from upstream import chart_defaults, crd_schema
from rollout.model import versions
from rollout.engine.harness import run_program
from rollout.load.stack import load_stack

CHART = "kubernetes:helm.sh/v4:Chart"
CONTAINER = "docker:index/container:Container"
#: Maps the charts leave open for users to fill: any key below them is allowed.
OPEN_MAPS = {("alertmanager", "config"), ("grafana", "grafana.ini"), ("prometheus", "prometheusSpec", "additionalScrapeConfigs")}
#: Keys of the grafana subchart's own defaults, which the kube-prometheus-stack
#: reference file does not repeat: the sidecar's folder support.
SUBCHART_KEYS = {
    ("grafana", "sidecar", "dashboards", "folderAnnotation"),
    ("grafana", "sidecar", "dashboards", "provider", "foldersFromFilesStructure"),
}


@pytest.fixture(scope="module")
def runs():
    return {stack: run_program(stack, FIXTURE) for stack in STACKS}


def _charts(run) -> dict[str, dict]:
    return {r.inputs["chart"]: r for r in run.of_type(CHART)}


def unknown_keys(ours, reference, path=()) -> list[str]:
    """Key paths of ``ours`` that the chart's defaults do not have."""
    if path in OPEN_MAPS or not isinstance(ours, dict):
        return []
    if isinstance(reference, dict) and reference == {} and path:
        return []  # the chart leaves this map empty for users to fill
    unknown = []
    for key, value in ours.items():
        if (*path, key) in SUBCHART_KEYS:
            continue
        if not isinstance(reference, dict) or key not in reference:
            unknown.append(".".join((*path, key)))
        else:
            unknown += unknown_keys(value, reference[key], (*path, key))
    return unknown


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_every_values_key_exists_in_the_charts_defaults(runs, stack):
    charts = _charts(runs[stack])
    assert set(charts) == set(versions.CHARTS)
    for chart, resource in charts.items():
        reference = chart_defaults(chart)
        assert resource.inputs["version"] == versions.CHARTS[chart][1]
        assert unknown_keys(resource.inputs["values"], reference) == [], chart


def test_the_unknown_key_check_catches_a_misspelt_key():
    reference = chart_defaults("kube-prometheus-stack")
    assert unknown_keys({"prometheus": {"prometheusSpec": {"retension": "1d"}}}, reference) == ["prometheus.prometheusSpec.retension"]


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_the_values_need_no_helm_hooks(runs, stack):
    values = _charts(runs[stack])["kube-prometheus-stack"].inputs["values"]
    assert values["prometheusOperator"]["admissionWebhooks"] == {"enabled": False, "patch": {"enabled": False}}
    assert values["defaultRules"] == {"create": False}


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_our_rules_monitors_and_probes_carry_the_label_the_operator_selects(runs, stack):
    run = runs[stack]
    chart = _charts(run)["kube-prometheus-stack"]
    release = chart.inputs["name"]
    spec = chart.inputs["values"]["prometheus"]["prometheusSpec"]
    for selector in ("rule", "serviceMonitor", "podMonitor", "probe"):
        # Nil selectors then mean "release: <release name>" in the chart.
        assert spec[f"{selector}SelectorNilUsesHelmValues"] is True
    custom = [r for r in run.resources if r.type.startswith("kubernetes:monitoring.coreos.com/")]
    assert {r.inputs["kind"] for r in custom} == {"PrometheusRule", "ServiceMonitor", "Probe"}
    for resource in custom:
        assert resource.inputs["metadata"]["labels"]["release"] == release, resource.name


@lru_cache(maxsize=None)
def _crd_schema(kind: str) -> dict:
    files = {"PrometheusRule": "prometheusrules", "ServiceMonitor": "servicemonitors", "Probe": "probes"}
    return crd_schema("monitoring.coreos.com", files[kind])


def _manifest(resource) -> dict:
    inputs = dict(resource.inputs)
    group_version = resource.type.split(":")[1]
    group, _, version = group_version.rpartition("/")
    kind = resource.type.split(":")[2]
    inputs.setdefault("apiVersion", f"{group}/{version}" if group != "core" else version)
    inputs.setdefault("kind", kind)
    return inputs


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_custom_resources_validate_against_the_operators_crd_schemas(runs, stack):
    custom = [r for r in runs[stack].resources if r.type.startswith("kubernetes:monitoring.coreos.com/")]
    assert custom
    for resource in custom:
        manifest = _manifest(resource)
        jsonschema.Draft7Validator(_crd_schema(manifest["kind"])).validate(manifest)


def test_the_crd_schema_check_catches_a_broken_rule():
    broken = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x"},
              "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "for": 5}]}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(_crd_schema("PrometheusRule")).validate(broken)


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_core_kinds_validate_with_kubernetes_validate(runs, stack):
    core = [r for r in runs[stack].resources if r.type.startswith("kubernetes:core/v1:")]
    assert {r.type for r in core} >= {"kubernetes:core/v1:Namespace", "kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:Secret"}
    for resource in core:
        kubernetes_validate.validate(_manifest(resource), "1.33", strict=True)


def test_production_protects_prometheus_and_its_volume_and_staging_does_not(runs):
    for stack, protected in (("production", True), ("staging", False)):
        chart = _charts(runs[stack])["kube-prometheus-stack"]
        assert chart.protect is protected and chart.retain_on_delete is protected, stack
        spec = chart.inputs["values"]["prometheus"]["prometheusSpec"]
        assert ("persistentVolumeClaimRetentionPolicy" in spec) is protected, stack
        assert spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == (
            load_stack(stack, FIXTURE).monitoring.storage.size
        )


def test_dev_keeps_no_volume(runs):
    spec = _charts(runs["dev"])["kube-prometheus-stack"].inputs["values"]["prometheus"]["prometheusSpec"]
    assert "storageSpec" not in spec


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_the_alertmanager_config_and_grafana_password_reach_the_cluster_only_as_secrets(runs, stack):
    run = runs[stack]
    chart = _charts(run)["kube-prometheus-stack"]
    assert "values.alertmanager.config" in chart.secret_paths
    (admin,) = [r for r in run.of_type("kubernetes:core/v1:Secret") if r.name.endswith("grafana-admin")]
    assert "stringData" in admin.secret_paths


def test_using_an_existing_operator_installs_no_chart(project):
    edit_stack(project, "staging", lambda c: c["rollout:monitoring"].update(install=False))
    run = run_program("staging", project)
    assert run.of_type(CHART) == []
    assert any(r.inputs.get("kind") == "PrometheusRule" for r in run.resources)


def test_the_docker_stack_runs_each_deployable_from_a_pinned_image_on_loopback_ports(runs):
    run = runs["local"]
    containers = {r.name: r for r in run.of_type(CONTAINER)}
    for component in ("prometheus", "alertmanager", "grafana", "pushgateway", "node-exporter", "blackbox-exporter"):
        assert f"monitoring-{component}" in containers, component
    images = {r.inputs["name"] for r in run.of_type("docker:index/remoteImage:RemoteImage")}
    service_images = {t.image for s in load_stack("local", FIXTURE).services for t in (s.stable, s.canary)}
    assert images == set(versions.IMAGES.values()) | service_images
    for image in images:
        assert not image.endswith(":latest") and ":" in image.rsplit("/", 1)[-1], image
    for container in containers.values():
        for port in container.inputs.get("ports", []):
            assert port["ip"] == "127.0.0.1", container.name


def test_the_docker_prometheus_gets_the_rendered_config_and_alertmanager_its_config_as_a_secret(runs):
    from rollout.build.artifacts import build_artifacts

    files = build_artifacts(load_stack("local", FIXTURE), "local").files
    containers = {r.name: r for r in runs["local"].of_type(CONTAINER)}
    uploads = {u["file"]: u["content"] for u in containers["monitoring-prometheus"].inputs["uploads"]}
    assert uploads["/etc/prometheus/prometheus.yml"] == files["prometheus/prometheus.yml"]
    assert uploads["/etc/prometheus/rules/errors.yaml"] == files["prometheus/rules/errors.yaml"]
    alertmanager = containers["monitoring-alertmanager"]
    assert "uploads[0].content" in alertmanager.secret_paths
    assert "envs[0]" in containers["monitoring-grafana"].secret_paths


def test_grafana_is_provisioned_through_its_api_after_grafana_is_up(runs):
    run = runs["local"]
    (provider,) = run.of_type("pulumi:providers:grafana")
    (grafana_container,) = [r for r in run.of_type(CONTAINER) if r.name == "monitoring-grafana"]
    assert grafana_container.urn in provider.dependencies
    (datasource,) = run.of_type("grafana:oss/dataSource:DataSource")
    assert datasource.inputs["uid"] == "rollout-prometheus"
    assert "auth" in provider.secret_paths
    assert run.of_type("grafana:oss/folder:Folder")


def test_every_secret_of_production_stays_in_secret_inputs():
    markers = {
        "pagerdutyRoutingKey": "trace-pd-7c1",
        "slackWarningsWebhookUrl": "https://trace.invalid/slack-warn-7c1",
        "slackDeploymentsWebhookUrl": "https://trace.invalid/slack-dep-7c1",
        "smtpPassword": "trace-smtp-7c1",
        "rollbackWebhookUrl": "https://trace.invalid/rollback-7c1",
    }
    run = run_program("production", FIXTURE, secret_values=markers)
    seen_in_secret = set()
    for resource in run.resources:
        plain = json.dumps(without_secrets(resource.inputs, resource.secret_paths))
        for marker in markers.values():
            assert marker not in plain, (resource.name, marker)
            if marker in json.dumps(resource.inputs):
                seen_in_secret.add(marker)
    assert seen_in_secret == set(markers.values()), "every secret is deployed (as a secret)"

