"""prometheus.yml per stack: the scrape jobs the alerts key on, read back from a real Prometheus.

The alert rules select on ``job``, ``service``, ``track`` and the probes'
``instance``; these tests prove the rendered config produces exactly those
labels, first from the document and then from the targets a real Prometheus
built from it (its relabelling included).
"""

from __future__ import annotations

import time

import pytest
import yaml

from alerts.catalogue import rule_groups
from conftest import FIXTURE, KUBERNETES_STACKS, STACKS, edit_stack
from rollout.model import conventions as c
from rollout.build.artifacts import build_artifacts
from rollout.load.stack import load_file, load_stack
from rollout.build.prometheus import prometheus_config, service_host
from servers import LOOPBACK, closed_port, http_json, start_prometheus

JOBS = {c.JOB_SERVICE, c.JOB_PROBE, c.JOB_PROMETHEUS, c.JOB_ALERTMANAGER, c.JOB_GRAFANA, c.JOB_PUSHGATEWAY, c.JOB_NODE}


def _jobs(document: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in document["scrape_configs"]}


@pytest.mark.parametrize("stack", STACKS)
def test_the_rendered_file_starts_with_the_generated_header(stack):
    text = build_artifacts(load_stack(stack, FIXTURE), stack).files["prometheus/prometheus.yml"]
    assert text.splitlines()[0] == "# " + c.GENERATED_HEADER.format(stack=stack)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_scrapes_exactly_the_jobs_the_alerts_key_on(stack):
    jobs = _jobs(prometheus_config(load_stack(stack, FIXTURE), stack))
    assert set(jobs) == JOBS


@pytest.mark.parametrize("stack", STACKS)
def test_both_tracks_of_every_service_are_scraped_and_probed_with_their_labels(stack):
    config = load_stack(stack, FIXTURE)
    jobs = _jobs(prometheus_config(config, stack))
    expected = {(service.name, track) for service in config.services for track in c.TRACKS}
    for job in (c.JOB_SERVICE, c.JOB_PROBE):
        labelled = {
            (group["labels"][c.SERVICE_LABEL], group["labels"][c.TRACK_LABEL]) for group in jobs[job]["static_configs"]
        }
        assert labelled == expected, job


def test_the_pushgateway_keeps_the_job_label_ci_pushed():
    jobs = _jobs(prometheus_config(load_stack("staging", FIXTURE), "staging"))
    assert jobs[c.JOB_PUSHGATEWAY]["honor_labels"] is True
    assert all("honor_labels" not in job for name, job in jobs.items() if name != c.JOB_PUSHGATEWAY)


def test_the_intervals_come_from_the_stack_config(project):
    edit_stack(project, "staging", lambda cfg: cfg["rollout:monitoring"].update(scrapeInterval="30s", evaluationInterval="1m"))
    config = load_file(project / "stacks" / "Pulumi.staging.yaml", project)
    document = prometheus_config(config, "staging")
    assert document["global"]["scrape_interval"] == "30s"
    assert document["global"]["evaluation_interval"] == "1m"
    assert document["global"]["external_labels"] == {"stack": "staging"}


def test_the_docker_stack_addresses_containers_by_their_network_aliases():
    config = load_stack("local", FIXTURE)
    jobs = _jobs(prometheus_config(config, "local"))
    assert jobs[c.JOB_ALERTMANAGER]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert jobs[c.JOB_PUSHGATEWAY]["static_configs"][0]["targets"] == ["pushgateway:9091"]
    service = config.services[0]
    targets = {t for group in jobs[c.JOB_SERVICE]["static_configs"] for t in group["targets"]}
    assert targets == {f"{service.name}-stable:{service.port}", f"{service.name}-canary:{service.port}"}


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_kubernetes_stacks_render_a_reference_addressed_by_cluster_dns(stack):
    config = load_stack(stack, FIXTURE)
    jobs = _jobs(prometheus_config(config, stack))
    namespace = config.kubernetes.namespace
    for name in (c.JOB_SERVICE, c.JOB_ALERTMANAGER, c.JOB_PUSHGATEWAY, c.JOB_NODE, c.JOB_GRAFANA):
        for group in jobs[name]["static_configs"]:
            for target in group["targets"]:
                assert f".{namespace}.svc:" in target, (name, target)


def _loopback_only(document: dict) -> dict:
    """The same config with every address Prometheus would connect to moved to a closed 127.0.0.1 port.

    Job names, labels, params and relabelling stay as rendered; only
    ``__address__`` values change, so the targets a real Prometheus reports
    carry the labels the rendered file gives them, and nothing leaves the host.
    """
    closed = f"{LOOPBACK}:{closed_port()}"
    document["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [closed]}]}]
    for job in document["scrape_configs"]:
        if job["job_name"] != c.JOB_PROBE:
            for group in job["static_configs"]:
                group["targets"] = [closed for _ in group["targets"]]
        for relabel in job.get("relabel_configs", []):
            if relabel.get("target_label") == "__address__":
                relabel["replacement"] = closed
    return document


@pytest.mark.e2e
@pytest.mark.parametrize("stack", STACKS)
def test_a_real_prometheus_builds_the_targets_and_loads_every_rule_group(stack):
    config = load_stack(stack, FIXTURE)
    files = build_artifacts(config, stack).files
    document = _loopback_only(yaml.safe_load(files["prometheus/prometheus.yml"]))
    rules = {name.removeprefix("prometheus/"): text for name, text in files.items() if name.startswith("prometheus/rules/")}
    configured = sum(len(group["targets"]) for job in document["scrape_configs"] for group in job["static_configs"])
    with start_prometheus(yaml.safe_dump(document), rules=rules) as prometheus:
        # Discovery hands the targets to the scrape manager just after /-/ready.
        targets = _wait_for_targets(prometheus.url, configured)
        loaded = http_json(f"{prometheus.url}/api/v1/rules")["data"]["groups"]

    by_job: dict[str, list[dict]] = {}
    for target in targets:
        by_job.setdefault(target["labels"]["job"], []).append(target["labels"])
    assert set(by_job) == JOBS

    expected_probes = {
        (service.name, track, f"http://{_host(config, stack, service.name, track)}{service.health.path}")
        for service in config.services
        for track in c.TRACKS
    }
    probes = {(l[c.SERVICE_LABEL], l[c.TRACK_LABEL], l["instance"]) for l in by_job[c.JOB_PROBE]}
    # The probe's instance is the checked URL, never the blackbox exporter's address.
    assert probes == expected_probes
    tracks = {(l[c.SERVICE_LABEL], l[c.TRACK_LABEL]) for l in by_job[c.JOB_SERVICE]}
    assert tracks == {(s.name, t) for s in config.services for t in c.TRACKS}

    expected_groups = {group["name"]: len(group["rules"]) for group in rule_groups(config)}
    assert {group["name"]: len(group["rules"]) for group in loaded} == expected_groups


def _wait_for_targets(url: str, count: int, deadline_s: float = 30) -> list[dict]:
    deadline = time.monotonic() + deadline_s
    while True:
        targets = http_json(f"{url}/api/v1/targets?state=active")["data"]["activeTargets"]
        if len(targets) >= count or time.monotonic() > deadline:
            return targets
        time.sleep(0.2)


def _host(config, stack: str, service: str, track: str) -> str:
    port = next(s.port for s in config.services if s.name == service)
    return service_host(config, service, track, port)


def test_the_probe_module_is_one_the_rendered_blackbox_config_defines():
    files = build_artifacts(load_stack("local", FIXTURE), "local").files
    modules = yaml.safe_load(files["blackbox/blackbox.yml"])["modules"]
    job = _jobs(yaml.safe_load(files["prometheus/prometheus.yml"]))[c.JOB_PROBE]
    (module,) = job["params"]["module"]
    assert module in modules
