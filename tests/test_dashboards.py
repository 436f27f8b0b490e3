"""The dashboards: what they read, what they draw, their golden JSON, and their provisioning.

Golden files live in tests/golden/<stack>/<uid>.json. Refresh them after an
intended change with ``UPDATE_GOLDEN=1 make test PYTEST_ARGS=tests/test_dashboards.py``
(or ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_dashboards.py``) and review the diff.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from alerts.catalogue import rule_groups
from conftest import FIXTURE, KUBERNETES_STACKS, ROOT, STACKS, edit_stack
from dashboards.build import dashboards, dumps
from rollout.model import conventions as c
from rollout.build.artifacts import build_artifacts
from rollout.engine.harness import run_program
from rollout.load.stack import load_stack

GOLDEN = ROOT / "tests" / "golden"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
GRAFANA_DASHBOARD = "grafana:oss/dashboard:Dashboard"

#: Every metric the contract names (conventions and the stack's rollout:metrics).
CONTRACT = {
    c.HTTP_REQUESTS_TOTAL, c.HTTP_REQUEST_DURATION_BUCKET, c.PROBE_SUCCESS, c.CI_PASS_RATIO,
    c.PROCESS_CPU_SECONDS, c.PROCESS_RESIDENT_MEMORY, c.UP, c.ALERTS, c.PROMETHEUS_HEAD_SERIES,
    c.PROMETHEUS_RULE_EVALUATION_FAILURES, c.ALERTMANAGER_NOTIFICATIONS, c.ALERTMANAGER_NOTIFICATIONS_FAILED,
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads: identifiers that are not functions,
    keywords, label names (inside braces or grouping clauses) or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name, rest = match.group(0), text[match.end():].lstrip()
        if rest.startswith("(") or name.lower() in KEYWORDS:
            continue
        if match.start() > 0 and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue  # the exponent or suffix of a number
        names.add(name)
    return names


@pytest.fixture(scope="module", params=STACKS)
def stack(request):
    name = request.param
    config = load_stack(name, None)
    return name, config, dashboards(config, name)


def _targets(documents):
    for uid, document in documents.items():
        for panel in document["panels"]:
            for target in panel["targets"]:
                yield uid, panel, target


def test_there_are_the_four_dashboards_and_the_overview_has_its_thirteen_panels(stack):
    _, _, documents = stack
    assert sorted(documents) == ["rollout-canary", "rollout-monitoring-health", "rollout-service-overview", "rollout-slos"]
    assert len(documents["rollout-service-overview"]["panels"]) == 13


def test_every_panel_and_query_uses_the_one_datasource_uid(stack):
    _, _, documents = stack
    for uid, panel, target in _targets(documents):
        assert panel["datasource"] == {"type": "prometheus", "uid": c.GRAFANA_DATASOURCE_UID}, (uid, panel["title"])
        assert target["datasource"]["uid"] == c.GRAFANA_DATASOURCE_UID


def test_panel_ids_are_unique_and_every_dashboard_has_service_and_track_variables(stack):
    _, _, documents = stack
    for document in documents.values():
        ids = [p["id"] for p in document["panels"]]
        assert ids == list(range(1, len(ids) + 1))
        assert [v["name"] for v in document["templating"]["list"]] == ["service", "track"]


def test_every_metric_a_panel_reads_is_in_the_contract_or_recorded_by_the_stack(stack):
    name, config, documents = stack
    recorded = {rule["record"] for group in rule_groups(config) for rule in group["rules"] if "record" in rule}
    allowed = CONTRACT | set(config.metrics.model_dump().values()) | recorded
    unknown = {
        (uid, panel["title"], metric)
        for uid, panel, target in _targets(documents)
        for metric in metric_names(target["expr"])
        if metric not in allowed
    }
    assert not unknown


def test_the_metric_name_reader_sees_through_labels_functions_and_groupings():
    expr = 'sum by (track) (rate(foo_total{job="x",le=~"0.2"}[5m])) / on(service) group_left bar:baz:ratio 1e-3'
    assert metric_names(expr) == {"foo_total", "bar:baz:ratio"}


def repeated_rules(expr: str, config) -> list[str]:
    """Recording rules whose expression ``expr`` contains, whitespace and label
    matchers aside (a panel narrows a series to its service; the computation is the same)."""
    squash = lambda text: re.sub(r"\s+", "", re.sub(r"\{[^}]*\}", "", text))  # noqa: E731
    recorded = [(squash(rule["expr"]), rule["record"]) for group in rule_groups(config) for rule in group["rules"] if "record" in rule]
    # vector(N) rules hold config values, not a computation a panel could repeat.
    return sorted({record for body, record in recorded if body in squash(expr) and not body.startswith("vector(")})


def test_no_panel_repeats_an_expression_a_recording_rule_provides(stack):
    _, config, documents = stack
    repeats = [(uid, panel["title"], repeated_rules(target["expr"], config)) for uid, panel, target in _targets(documents)]
    assert [r for r in repeats if r[2]] == []


def test_the_repeat_check_finds_a_recomputed_sli():
    config = load_stack("staging", None)
    quantile = f'histogram_quantile(0.95, {c.BUCKET_RATE}{{service="$service"}})'
    assert repeated_rules(quantile, config) == [c.LATENCY_P95]
    assert repeated_rules(f'{c.LATENCY_P95}{{service="$service"}}', config) == []


@pytest.mark.parametrize("stack_name", ["staging"])
def test_the_gate_thresholds_drawn_are_the_stacks_own(project, stack_name):
    def tighten(config: dict) -> None:
        config["rollout:canary"].update({"maxErrorRatio": 0.02, "maxLatencyP95Seconds": 0.4, "maxLatencyP99Seconds": 0.9, "minRequests": 321})
        config["rollout:monitoring"].setdefault("budgets", {})["activeSeries"] = 123456

    edit_stack(project, stack_name, tighten)
    config = load_stack(stack_name, project)
    documents = dashboards(config, stack_name)

    def steps(uid, title):
        (panel,) = [p for p in documents[uid]["panels"] if p["title"] == title]
        return [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]][1:]

    assert steps("rollout-canary", "Error ratio: canary against stable") == [0.02]
    assert steps("rollout-canary", "P95 latency: canary against stable") == [0.4]
    assert steps("rollout-canary", "P99 latency: canary against stable") == [0.9]
    assert steps("rollout-canary", "Canary requests in range against the gate's minimum") == [321]
    assert steps("rollout-monitoring-health", "Head series against the budget") == [123456]


def test_the_rendered_artifacts_hold_each_dashboard(stack):
    name, config, documents = stack
    files = build_artifacts(config, name).files
    for uid, document in documents.items():
        assert files[f"grafana/dashboards/{uid}.json"] == dumps(document)


def test_the_json_is_deterministic(stack):
    name, config, documents = stack
    again = dashboards(load_stack(name, None), name)
    assert {u: dumps(d) for u, d in documents.items()} == {u: dumps(d) for u, d in again.items()}
    for text in map(dumps, documents.values()):
        assert not re.search(r"\d\.\d{7,}", text), "float noise"


def test_the_golden_json_matches(stack):
    name, _, documents = stack
    folder = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.json"):
            old.unlink()
        for uid, document in documents.items():
            (folder / f"{uid}.json").write_text(dumps(document))
    stored = {p.stem: p.read_text() for p in sorted(folder.glob("*.json"))}
    assert stored == {uid: dumps(d) for uid, d in documents.items()}, (
        "dashboards changed: review, then UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_dashboards.py"
    )


# --- provisioning under the mocks -----------------------------------------------------


@pytest.fixture(scope="module")
def runs():
    return {name: run_program(name, FIXTURE) for name in STACKS}


@pytest.mark.parametrize("stack_name", KUBERNETES_STACKS)
def test_kubernetes_dashboards_are_configmaps_with_the_sidecar_label_and_folder(runs, stack_name):
    run = runs[stack_name]
    config = load_stack(stack_name, None)
    maps = [r for r in run.of_type(CONFIG_MAP) if r.name.startswith("dashboards-")]
    label, value = c.GRAFANA_DASHBOARD_LABEL
    assert sorted(r.name for r in maps) == sorted(f"dashboards-{uid}" for uid in dashboards(config, stack_name))
    for resource in maps:
        metadata = resource.inputs["metadata"]
        assert metadata["labels"][label] == value
        assert metadata["annotations"][c.GRAFANA_FOLDER_ANNOTATION] == config.monitoring.grafana.folder
        (text,) = resource.inputs["data"].values()
        assert json.loads(text)["uid"] == resource.name.removeprefix("dashboards-")


def test_the_local_stack_provisions_dashboards_through_grafanas_api_after_grafana_is_up(runs):
    run = runs["local"]
    (provider,) = run.of_type("pulumi:providers:grafana")
    (grafana,) = [r for r in run.resources if r.type == "docker:index/container:Container" and r.name == "monitoring-grafana"]
    created = run.of_type(GRAFANA_DASHBOARD)
    assert len(created) == 4
    for resource in created:
        assert grafana.urn in resource.dependencies
        assert resource.inputs["overwrite"] is True
        assert json.loads(resource.inputs["configJson"])["panels"]
    assert not [r for r in run.of_type(CONFIG_MAP) if r.name.startswith("dashboards-")]


def test_a_kubernetes_stack_with_a_grafana_url_provisions_through_the_api_after_the_chart(project):
    edit_stack(project, "staging", lambda config: config["rollout:monitoring"].setdefault("grafana", {}).update({"url": "https://grafana.example.com"}))
    run = run_program("staging", root=project)
    # A dependency on the monitoring component means one on each of its resources.
    (chart,) = [r for r in run.of_type("kubernetes:helm.sh/v4:Chart") if r.inputs["chart"] == "kube-prometheus-stack"]
    created = run.of_type(GRAFANA_DASHBOARD)
    assert len(created) == 4
    for resource in created:
        assert chart.urn in resource.dependencies


def test_a_kubernetes_stack_without_a_grafana_url_has_no_api_dashboards(runs):
    assert not runs["production"].of_type(GRAFANA_DASHBOARD) or load_stack("production", None).monitoring.grafana.url


@pytest.mark.parametrize("stack_name", KUBERNETES_STACKS)
def test_the_charts_sidecar_reads_the_label_and_folder_annotation_the_configmaps_carry(runs, stack_name):
    (chart,) = [r for r in runs[stack_name].of_type("kubernetes:helm.sh/v4:Chart") if r.inputs["chart"] == "kube-prometheus-stack"]
    sidecar = chart.inputs["values"]["grafana"]["sidecar"]["dashboards"]
    label, value = c.GRAFANA_DASHBOARD_LABEL
    assert (sidecar["label"], sidecar["labelValue"]) == (label, value)
    # Both halves are needed: without foldersFromFilesStructure the annotation is inert.
    assert sidecar["folderAnnotation"] == c.GRAFANA_FOLDER_ANNOTATION
    assert sidecar["provider"]["foldersFromFilesStructure"] is True


def test_the_json_decodes_into_grafanas_dashboard_model_without_losing_a_field(stack):
    """The SDK's models are generated from Grafana's schemas: a misspelt or
    misplaced key would not survive the round trip."""
    import warnings

    from dashboards.build import _normalise

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.models import dashboard as model

    _, _, documents = stack
    for uid, document in documents.items():
        decoded = model.Dashboard.from_json(document)
        assert _normalise(json.loads(json.dumps(decoded, cls=JSONEncoder))) == document, uid
