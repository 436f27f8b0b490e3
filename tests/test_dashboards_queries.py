"""Every panel's every query runs and returns data against a real Prometheus.

Per stack: synthetic series of the metric contract (and of the monitoring
stack's own metrics the health dashboard reads) are backfilled with
``promtool tsdb create-blocks-from openmetrics`` up to now; a real Prometheus on
127.0.0.1 opens them with the stack's own recording and alerting rules; each
query of each panel, with the dashboard variables substituted as Grafana would
(``$service`` each service, ``$track`` the "All" value, ``$__range`` the
dashboard's default range), goes through the HTTP API. An error, or an empty
answer, fails.
"""

from __future__ import annotations

import time
import urllib.parse

import pytest
import yaml

from alerts.catalogue import rule_groups
from conftest import STACKS
from dashboards.build import SERVICE_VAR, TRACK_VAR, dashboards
from rollout.model import conventions as c
from rollout.model import scope
from rollout.load.stack import load_stack
from servers import backfill, http_json, start_prometheus

pytestmark = pytest.mark.e2e

STEP = 15
HISTORY = 2 * 3600
BUCKETS = ("0.05", "0.1", "0.2", "0.5", "1", "2.5", "+Inf")
#: Grafana's default range of the dashboards (now-6h), as it substitutes $__range.
RANGE = "6h"


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(pairs.items())) + "}"


def synthetic_series(config, end: int) -> str:
    """OpenMetrics text of healthy-ish traffic for every service and track, ending at ``end``."""
    times = list(range(end - HISTORY, end + 1, STEP))
    families: dict[tuple[str, str], list[str]] = {}

    def add(family: str, kind: str, name: str, labels: dict[str, str], value_at) -> None:
        rows = families.setdefault((family, kind), [])
        rows += [f"{name}{_labels(labels)} {value_at(i)} {t}" for i, t in enumerate(times)]

    m = config.metrics
    # Every series in the stack's scope (its namespace), as its Prometheus labels them.
    scoped = scope.labels(config)
    bounds = sorted(
        {*BUCKETS[:-1], f"{config.slo.latency_p95_seconds:g}", f"{config.canary.max_latency_p95_seconds:g}",
         f"{config.canary.max_latency_p99_seconds:g}"},
        key=float,
    ) + ["+Inf"]
    for service in config.services:
        for track in c.TRACKS:
            base = {**scoped, "job": c.JOB_SERVICE, c.SERVICE_LABEL: service.name, c.TRACK_LABEL: track,
                    "instance": f"{service.name}-{track}:{service.port}"}
            add("http_requests", "counter", m.requests_total, {**base, c.CODE_LABEL: "200"}, lambda i: 99 * i)
            add("http_requests", "counter", m.requests_total, {**base, c.CODE_LABEL: "500"}, lambda i: i)
            histogram = m.request_duration_bucket.removesuffix("_bucket")
            for bound in bounds:
                # 90 % within 0.1 s, the rest spread up to 2.5 s.
                share = 1.0 if bound == "+Inf" else min(1.0, 0.9 + float(bound) / 25) if float(bound) >= 0.1 else 0.5
                add(histogram, "histogram", m.request_duration_bucket, {**base, "le": bound}, lambda i, s=share: int(100 * s) * i)
            add(histogram, "histogram", f"{histogram}_count", base, lambda i: 100 * i)
            add(histogram, "histogram", f"{histogram}_sum", base, lambda i: 8 * i)
            probe = {**scoped, "job": c.JOB_PROBE, c.SERVICE_LABEL: service.name, c.TRACK_LABEL: track,
                     "instance": f"http://{service.name}-{track}:{service.port}{service.health.path}"}
            add(m.probe_success, "gauge", m.probe_success, probe, lambda i: 0 if i % 40 == 7 else 1)
            add("process_cpu_seconds", "counter", c.PROCESS_CPU_SECONDS, base, lambda i: round(0.3 * i, 1))
            add(c.PROCESS_RESIDENT_MEMORY, "gauge", c.PROCESS_RESIDENT_MEMORY, base, lambda i: 180_000_000 + i)
            add(c.UP, "gauge", c.UP, base, lambda i: 1)
    add(c.CI_PASS_RATIO, "gauge", c.CI_PASS_RATIO, {**scoped, "job": c.CI_PUSH_JOB, "suite": "unit"}, lambda i: 0.99)
    own = {**scoped, "job": c.JOB_PROMETHEUS, "instance": "prometheus:9090"}
    add(c.UP, "gauge", c.UP, own, lambda i: 1)
    add(c.PROMETHEUS_HEAD_SERIES, "gauge", c.PROMETHEUS_HEAD_SERIES, own, lambda i: 40_000 + i)
    add("prometheus_rule_evaluation_failures", "counter", c.PROMETHEUS_RULE_EVALUATION_FAILURES,
        {**own, "rule_group": "rollout-sli"}, lambda i: 0)
    manager = {**scoped, "job": c.JOB_ALERTMANAGER, "instance": "alertmanager:9093"}
    add(c.UP, "gauge", c.UP, manager, lambda i: 1)
    for integration in ("pagerduty", "slack", "email", "webhook"):
        add("alertmanager_notifications", "counter", c.ALERTMANAGER_NOTIFICATIONS, {**manager, "integration": integration}, lambda i: i // 20)
        add("alertmanager_notifications_failed", "counter", c.ALERTMANAGER_NOTIFICATIONS_FAILED, {**manager, "integration": integration}, lambda i: 0)
    lines = []
    for (family, kind), rows in families.items():
        lines.append(f"# TYPE {family} {kind}")
        lines += rows
    return "\n".join(lines) + "\n# EOF\n"


def substituted(expr: str, service: str) -> str:
    return (
        expr.replace(f"${SERVICE_VAR}", service)
        .replace(f"${TRACK_VAR}", "|".join(c.TRACKS))
        .replace("$__range", RANGE)
    )


def panel_queries(config, stack: str):
    """(dashboard uid, panel title, refId, instant, expr) of every panel's every query."""
    for uid, document in dashboards(config, stack).items():
        for panel in document["panels"]:
            for target in panel["targets"]:
                yield uid, panel["title"], target["refId"], target.get("instant", False), target["expr"]


@pytest.fixture(scope="module", params=STACKS)
def loaded(request, tmp_path_factory):
    stack = request.param
    config = load_stack(stack, None)
    tmp = tmp_path_factory.mktemp(f"dashboards-{stack}")
    blocks = tmp / "tsdb"
    backfill(synthetic_series(config, int(time.time()) - 1), tmp, blocks)
    rules = {"rules/rollout.yaml": yaml.safe_dump({"groups": rule_groups(config)}, sort_keys=False)}
    prometheus_yml = yaml.safe_dump(
        {"global": {"scrape_interval": "15s", "evaluation_interval": "5s"}, "rule_files": ["rules/rollout.yaml"]}
    )
    with start_prometheus(prometheus_yml, rules=rules, storage_dir=blocks) as prometheus:
        yield stack, config, prometheus


def _run(prometheus, expr: str, instant: bool) -> tuple[str | None, list]:
    now = time.time()
    if instant:
        params = {"query": expr, "time": f"{now:.3f}"}
        path = "query"
    else:
        params = {"query": expr, "start": f"{now - 600:.3f}", "end": f"{now:.3f}", "step": "15"}
        path = "query_range"
    try:
        answer = http_json(f"{prometheus.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
    except Exception as err:  # an HTTP 400 is how Prometheus refuses a bad query
        return str(getattr(err, "read", lambda: b"")() or err), []
    if answer.get("status") != "success":
        return str(answer), []
    return None, answer["data"]["result"]


def test_every_panel_query_runs_and_returns_data(loaded):
    stack, config, prometheus = loaded
    queries = [
        (uid, title, ref, instant, substituted(expr, service.name))
        for uid, title, ref, instant, expr in panel_queries(config, stack)
        for service in config.services
    ]
    assert len(queries) >= 27 * len(config.services)
    # Recording rules run on their own clock: wait (bounded) until the rules
    # have evaluated a few times, then judge every query once.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if all(_run(prometheus, q[4], q[3])[1] for q in queries):
            break
        time.sleep(2)
    failures = []
    for uid, title, ref, instant, expr in queries:
        error, result = _run(prometheus, expr, instant)
        if error or not result:
            failures.append(f"{uid} / {title} / {ref}: {error or 'no data'}: {expr}")
    assert not failures, "\n".join(failures)


def test_the_service_variable_lists_the_stacks_services(loaded):
    stack, config, prometheus = loaded
    overview = dashboards(config, stack)["rollout-service-overview"]
    (variable,) = [v for v in overview["templating"]["list"] if v["name"] == SERVICE_VAR]
    # The stack's own services only: a shared Prometheus holds other stacks' too.
    selector = scope.select(config, c.REQUEST_RATE)
    assert variable["query"] == f"label_values({selector}, {c.SERVICE_LABEL})"
    match = urllib.parse.urlencode({"match[]": selector})
    # The recording rules run on their own clock: wait (bounded) for their first evaluation.
    deadline = time.monotonic() + 90
    while True:
        answer = http_json(f"{prometheus.url}/api/v1/label/{c.SERVICE_LABEL}/values?{match}")
        if answer["data"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sorted(answer["data"]) == sorted(s.name for s in config.services)
