"""The Kubernetes monitoring stack's wiring under Pulumi's mocks: scrape job names,
the protection of Prometheus' data, and an existing operator's release label.

tests/test_monitoring.py covers the values keys, the CRD and core-kind schemas,
secrets and the Docker target.
"""

from __future__ import annotations

import copy

import pulumi
import pytest
import yaml
from pulumi.runtime import mocks as pulumi_mocks

from components.monitoring.kubernetes import keep_prometheus_data
from conftest import FIXTURE, KUBERNETES_STACKS, edit_stack
from upstream import chart_defaults
from rollout.model.conventions import GRAFANA_DATASOURCE_UID
from rollout.engine.harness import run_program
from rollout.load.stack import load_stack
from rollout.build.prometheus import prometheus_config

CHART = "kubernetes:helm.sh/v4:Chart"
MONITORING_CR = "kubernetes:monitoring.coreos.com/v1:"
#: Monitors the charts create: chart, path of the monitor's values, and the key that turns it on.
CHART_MONITORS = [
    ("kube-prometheus-stack", ("prometheus", "serviceMonitor"), "selfMonitor"),
    ("kube-prometheus-stack", ("alertmanager", "serviceMonitor"), "selfMonitor"),
    ("kube-prometheus-stack", ("prometheus-node-exporter", "prometheus", "monitor"), "enabled"),
    ("prometheus-pushgateway", ("serviceMonitor",), "enabled"),
]


@pytest.fixture(scope="module")
def runs():
    return {stack: run_program(stack, FIXTURE) for stack in KUBERNETES_STACKS}


def _merged(defaults, ours):
    """Values as Helm sees them: ours over the chart's defaults."""
    if not isinstance(defaults, dict) or not isinstance(ours, dict):
        return ours
    return {key: _merged(defaults.get(key), ours[key]) if key in ours else defaults[key] for key in defaults | ours}


def _jobs_set_by(relabelings) -> set[str]:
    return {r["replacement"] for r in relabelings or [] if r.get("targetLabel") == "job"}


def deployed_jobs(run) -> set[str]:
    """Job names Prometheus will give the targets this run declares."""
    charts = {r.inputs["chart"]: r for r in run.of_type(CHART)}
    jobs: set[str] = set()
    for chart, path, switch in CHART_MONITORS:
        if chart not in charts:
            continue
        values = _merged(chart_defaults(chart), charts[chart].inputs["values"])
        for depth in range(1, len(path)):
            # A disabled component (e.g. alertmanager.enabled: false) has no monitor either.
            assert values_at(values, path[:depth]).get("enabled", True) is not False, path
        monitor = values_at(values, path)
        if monitor.get(switch) is True:
            jobs |= _jobs_set_by(monitor.get("relabelings"))
    for resource in run.resources:
        if resource.type == MONITORING_CR + "ServiceMonitor":
            for endpoint in resource.inputs["spec"]["endpoints"]:
                jobs |= _jobs_set_by(endpoint.get("relabelings"))
        elif resource.type == MONITORING_CR + "Probe":
            jobs.add(resource.inputs["spec"]["jobName"])
    return jobs


def values_at(values: dict, path: tuple[str, ...]) -> dict:
    for key in path:
        values = values[key]
    return values


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_every_scrape_job_the_rendered_config_names_is_scraped_under_that_name(runs, stack):
    # `rollout verify`, the dashboards and the alert catalogue read these job
    # names; the operator would otherwise name each job after its Service.
    expected = {job["job_name"] for job in prometheus_config(load_stack(stack, FIXTURE), stack)["scrape_configs"]}
    assert expected <= deployed_jobs(runs[stack])


def test_the_job_check_sees_a_chart_monitor_that_lost_its_relabeling(runs):
    run = copy.deepcopy(runs["staging"])
    (chart,) = [r for r in run.of_type(CHART) if r.inputs["chart"] == "kube-prometheus-stack"]
    before = deployed_jobs(run)
    chart.inputs["values"]["prometheus"]["serviceMonitor"]["relabelings"] = []
    assert before - deployed_jobs(run) == {"prometheus"}


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_grafana_is_scraped_by_our_monitor_on_the_port_name_the_values_set(runs, stack):
    run = runs[stack]
    (chart,) = [r for r in run.of_type(CHART) if r.inputs["chart"] == "kube-prometheus-stack"]
    grafana = chart.inputs["values"]["grafana"]
    # Two monitors of one Grafana would scrape it twice, under two job names.
    assert grafana["serviceMonitor"] == {"enabled": False}
    (monitor,) = [
        r for r in run.of_type(MONITORING_CR + "ServiceMonitor")
        if r.inputs["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == "grafana"
    ]
    assert monitor.inputs["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == chart.inputs["name"]
    assert [e["port"] for e in monitor.inputs["spec"]["endpoints"]] == [grafana["service"]["portName"]]


def _child(type_: str) -> pulumi.ResourceTransformArgs:
    return pulumi.ResourceTransformArgs(
        custom=True, type_=type_, name="monitoring-kube-prometheus-stack:monitoring/x", props={}, opts=pulumi.ResourceOptions()
    )


def test_the_transform_protects_and_retains_the_rendered_prometheus_only():
    kept = keep_prometheus_data(_child("kubernetes:monitoring.coreos.com/v1:Prometheus"))
    assert kept is not None and kept.opts.protect is True and kept.opts.retain_on_delete is True
    for other in ("kubernetes:core/v1:ConfigMap", "kubernetes:monitoring.coreos.com/v1:Alertmanager", "kubernetes:apps/v1:Deployment"):
        assert keep_prometheus_data(_child(other)) is None, other


@pytest.fixture
def chart_transforms(monkeypatch):
    """The transforms each chart was registered with (the mocks receive but do not run them)."""
    seen: dict[str, list] = {}
    original = pulumi_mocks.MockResourceArgs.__init__

    def record(self, typ, name, inputs, *args, **kwargs):
        original(self, typ, name, inputs, *args, **kwargs)
        if typ == CHART:
            seen[inputs["chart"]] = list(self.transforms)

    monkeypatch.setattr(pulumi_mocks.MockResourceArgs, "__init__", record)
    return seen


@pytest.mark.parametrize("stack, protected", [("production", True), ("staging", False)], ids=["production keeps its Prometheus", "staging does not"])
def test_only_a_protected_stack_transforms_its_prometheus_into_a_kept_resource(chart_transforms, stack, protected):
    run_program(stack, FIXTURE)
    transforms = chart_transforms["kube-prometheus-stack"]
    results = [t(_child("kubernetes:monitoring.coreos.com/v1:Prometheus")) for t in transforms]
    kept = [r for r in results if r is not None and r.opts.protect and r.opts.retain_on_delete]
    assert bool(kept) is protected
    assert chart_transforms["prometheus-pushgateway"] == [] and chart_transforms["prometheus-blackbox-exporter"] == []


MONITORING_CRS = ("kubernetes:monitoring.coreos.com/v1:", "kubernetes:monitoring.coreos.com/v1alpha1:")


def test_an_existing_operator_gets_custom_resources_labelled_with_its_release(project):
    edit_stack(project, "staging", lambda c: c["rollout:monitoring"].update(install=False, releaseName="kube-prom"))
    run = run_program("staging", project)
    custom = [r for r in run.resources if r.type.startswith(MONITORING_CRS)]
    assert {r.inputs["kind"] for r in custom} == {"PrometheusRule", "ServiceMonitor", "Probe", "AlertmanagerConfig"}
    assert all(r.inputs["metadata"]["labels"] == {"release": "kube-prom"} for r in custom)
    # That install's Grafana is its own: no monitor of ours selects it.
    assert not [r for r in custom if r.inputs["metadata"]["name"].endswith("-grafana")]
    assert run.of_type(CHART) == []


def test_an_existing_operator_selects_by_the_labels_the_stack_names(project):
    labels = {"prometheus.example.com/tenant": "payments", "team": "platform"}
    edit_stack(project, "staging", lambda c: c["rollout:monitoring"].update(install=False, existing={"labels": labels}))
    run = run_program("staging", project)
    custom = [r for r in run.resources if r.type.startswith(MONITORING_CRS)]
    assert len(custom) >= 5
    assert all(r.inputs["metadata"]["labels"] == labels for r in custom)


def test_existing_operator_settings_are_refused_when_the_stack_installs_its_own(project):
    edit_stack(project, "staging", lambda c: c["rollout:monitoring"].update(existing={"namespace": "observability"}))
    with pytest.raises(pulumi.RunError, match="rollout:monitoring.existing: is only for monitoring.install: false"):
        run_program("staging", project)


def _probers(run) -> set[str]:
    return {r.inputs["spec"]["prober"]["url"] for r in run.of_type(MONITORING_CR + "Probe")}


def test_an_existing_operator_gets_a_blackbox_exporter_its_probes_point_at(project):
    edit_stack(project, "staging", lambda c: c["rollout:monitoring"].update(install=False))
    run = run_program("staging", project)
    (service,) = [r for r in run.of_type("kubernetes:core/v1:Service") if r.inputs["metadata"]["name"] == "prometheus-blackbox-exporter"]
    (deployment,) = [r for r in run.of_type("kubernetes:apps/v1:Deployment") if r.inputs["metadata"]["name"] == "prometheus-blackbox-exporter"]
    (config_map,) = [r for r in run.of_type("kubernetes:core/v1:ConfigMap") if r.inputs["metadata"]["name"] == "prometheus-blackbox-exporter"]
    port = int(service.inputs["spec"]["ports"][0]["port"])  # the mocks hand numbers back as floats
    assert _probers(run) == {f"prometheus-blackbox-exporter.rollout-staging.svc:{port}"}
    assert deployment.inputs["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == config_map.inputs["metadata"]["name"]
    assert "http_2xx" in yaml.safe_load(config_map.inputs["data"]["blackbox.yml"])["modules"]
    # Every Probe names the stack's namespace in its target labels (the stack's scope).
    for probe in run.of_type(MONITORING_CR + "Probe"):
        assert probe.inputs["spec"]["targets"]["staticConfig"]["labels"]["namespace"] == "rollout-staging"


def test_an_existing_blackbox_exporter_is_used_and_none_deployed(project):
    edit_stack(project, "staging", lambda c: c["rollout:monitoring"].update(
        install=False, existing={"blackboxExporter": "blackbox.monitoring.svc:9115"}))
    run = run_program("staging", project)
    assert _probers(run) == {"blackbox.monitoring.svc:9115"}
    assert not [r for r in run.resources if r.inputs.get("metadata", {}).get("name") == "prometheus-blackbox-exporter"]


def test_the_routing_credentials_are_a_secret_of_the_stack_the_resource_references(project):
    edit_stack(project, "production", lambda c: c["rollout:monitoring"].update(install=False))
    run = run_program("production", project)
    (resource,) = run.of_type("kubernetes:monitoring.coreos.com/v1alpha1:AlertmanagerConfig")
    (secret,) = [r for r in run.of_type("kubernetes:core/v1:Secret") if r.inputs["metadata"]["name"] == "rollout-alertmanager"]
    referenced = {
        value["key"]
        for receiver in resource.inputs["spec"]["receivers"]
        for integration in receiver.values() if isinstance(integration, list)
        for item in integration
        for value in [*item.values(), *item.get("httpConfig", {}).get("authorization", {}).values()]
        if isinstance(value, dict) and value.get("name") == "rollout-alertmanager"
    }
    assert referenced == set(secret.inputs["stringData"]) and "pagerdutyRoutingKey" in referenced
    assert "stringData" in secret.secret_paths


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_nothing_the_chart_would_run_as_a_helm_hook_is_turned_on(runs, stack):
    # helm.v4.Chart applies hook resources as plain resources, once, unordered.
    (chart,) = [r for r in runs[stack].of_type(CHART) if r.inputs["chart"] == "kube-prometheus-stack"]
    values = _merged(chart_defaults("kube-prometheus-stack"), chart.inputs["values"])
    assert values["crds"]["upgradeJob"]["enabled"] is False
    webhooks = values["prometheusOperator"]["admissionWebhooks"]
    assert (webhooks["enabled"], webhooks["patch"]["enabled"], webhooks["certManager"]["enabled"]) == (False, False, False)


def test_an_existing_grafana_without_its_credentials_is_refused_before_any_resource(project):
    import pulumi

    def existing_grafana(config):
        config["rollout:monitoring"].update(install=False, grafana={"url": "http://grafana.monitoring.svc:3000"})

    edit_stack(project, "staging", existing_grafana)
    declared: list = []
    with pytest.raises(pulumi.RunError) as caught:
        run_program("staging", project, record=declared)
    assert declared == []
    assert str(caught.value) == (
        "stacks/Pulumi.staging.yaml: rollout:secrets.grafanaAuth: is required (a secret) when "
        "monitoring.grafana.url is set and monitoring.install is false"
    )


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_the_values_carry_the_stacks_retention_replicas_and_resources(runs, stack):
    from rollout.model.durations import format_duration

    monitoring = load_stack(stack, FIXTURE).monitoring
    (chart,) = [r for r in runs[stack].of_type(CHART) if r.inputs["chart"] == "kube-prometheus-stack"]
    values = chart.inputs["values"]
    prometheus, alertmanager = values["prometheus"]["prometheusSpec"], values["alertmanager"]["alertmanagerSpec"]
    assert prometheus["retention"] == format_duration(monitoring.retention)
    assert alertmanager["replicas"] == monitoring.alertmanager_replicas
    for spec, resources in ((prometheus, monitoring.prometheus_resources), (alertmanager, monitoring.alertmanager_resources)):
        assert spec.get("resources") == (resources.model_dump(by_alias=True) if resources else None)
    if monitoring.storage.persistent:
        claim = prometheus["storageSpec"]["volumeClaimTemplate"]["spec"]
        assert claim["resources"]["requests"]["storage"] == monitoring.storage.size
        assert claim.get("storageClassName") == monitoring.storage.storage_class


def test_production_reserves_room_for_each_alertmanager_replica(runs):
    (chart,) = [r for r in runs["production"].of_type(CHART) if r.inputs["chart"] == "kube-prometheus-stack"]
    assert chart.inputs["values"]["alertmanager"]["alertmanagerSpec"]["resources"]["requests"]["memory"] == "128Mi"


#: Keys of the chart's default Alertmanager config that survive Helm's merge under ours,
#: harmlessly: resolve_timeout 5m is Alertmanager's own default, and the templates glob
#: names the chart's (empty) template folder.
CHART_CONFIG_KEPT = {"global", "templates"}


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_helm_merges_no_default_route_or_inhibit_rule_into_our_alertmanager_config(runs, stack):
    # Helm merges maps of our values over the chart's defaults: a top-level key
    # of the chart's config that ours left out (its namespace-based inhibit
    # rules, its "null" receiver) would silently join the deployed config.
    defaults = chart_defaults("kube-prometheus-stack")
    (chart,) = [r for r in runs[stack].of_type(CHART) if r.inputs["chart"] == "kube-prometheus-stack"]
    ours = chart.inputs["values"]["alertmanager"]["config"]
    assert set(defaults["alertmanager"]["config"]) - set(ours) == CHART_CONFIG_KEPT
    assert set(defaults["alertmanager"]["config"]["route"]) <= set(ours["route"])


@pytest.mark.parametrize("url", [None, "http://rollout-monitoring-grafana.rollout.svc"], ids=["no Grafana URL: the sidecar", "a Grafana URL: the API"])
def test_the_prometheus_datasource_has_one_owner(project, url):
    if url:
        edit_stack(project, "staging", lambda config: config["rollout:monitoring"].update(grafana={"url": url}))
    run = run_program("staging", project)
    (chart,) = [r for r in run.of_type(CHART) if r.inputs["chart"] == "kube-prometheus-stack"]
    sidecar = chart.inputs["values"]["grafana"]["sidecar"]["datasources"]
    through_api = run.of_type("grafana:oss/dataSource:DataSource")
    assert sidecar["uid"] == GRAFANA_DATASOURCE_UID
    assert sidecar["defaultDatasourceEnabled"] is (url is None)
    assert [d.inputs["uid"] for d in through_api] == ([] if url is None else [GRAFANA_DATASOURCE_UID])


@pytest.mark.parametrize("install", [True, False], ids=["installs the charts", "brings its own monitoring"])
def test_only_a_stack_that_installs_grafana_draws_an_admin_password(project, install):
    """The generated password opens the Grafana the charts install, and nothing else: a stack
    that brings its own monitoring draws none, so no dynamic provider runs in its preview."""
    edit_stack(project, "staging", lambda c: c["rollout:monitoring"].update(install=install))
    run = run_program("staging", project)
    drawn = [r for r in run.of_type("pulumi-python:dynamic:Resource") if "length" in r.inputs]
    admin = [r for r in run.of_type("kubernetes:core/v1:Secret") if r.name == "monitoring-grafana-admin"]
    if install:
        (password,) = drawn
        assert password.name == "monitoring-grafana-admin-password"
        assert len(admin) == 1
    else:
        assert drawn == [] and admin == []
    assert run.of_type("pulumi-python:dynamic:Resource") == drawn  # no other dynamic resource in a Kubernetes stack
