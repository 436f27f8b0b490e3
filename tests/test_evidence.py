"""Gate evidence records what Prometheus answered: a number, or exactly why there is none."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from rollout.ops.evidence import PrometheusClient, _scalar, collect, dumps, longest_failure_run
from rollout.load.stack import load_stack
from rollout.ops.http import Retry, public_url
from rollout.model.state import rollout_state
from servers import closed_port, start_prometheus
from conftest import FIXTURE

@pytest.fixture(scope="module")
def empty_prometheus():
    """A real Prometheus with no series at all."""
    with start_prometheus(yaml.safe_dump({"global": {"scrape_interval": "15s"}})) as prometheus:
        yield prometheus


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "promql, status",
    [
        pytest.param('sum(increase(http_requests_total{service="genesis"}[1h]))', "empty", id="no series is empty, not 0"),
        pytest.param("vector(0) / vector(0)", "nan", id="zero over zero is NaN, not 0"),
        pytest.param("vector(1) / vector(0)", "infinite", id="one over zero is infinite"),
        pytest.param("sum(rate(", "error", id="a query Prometheus cannot parse is an error"),
        pytest.param("vector(0.25)", "ok", id="a number is ok"),
    ],
)
def test_each_answer_of_a_real_prometheus_is_recorded_as_what_it_is(empty_prometheus, promql, status):
    recorded, value, detail = _scalar(PrometheusClient(empty_prometheus.url).query(promql, now()))
    assert recorded == status
    assert (value == 0.25) if status == "ok" else (value is None and detail)


def test_an_unreachable_prometheus_is_recorded_as_unreachable():
    result = PrometheusClient(f"http://127.0.0.1:{closed_port()}", retry=Retry(deadline_s=1)).query("vector(1)", now())
    assert result.status == "unreachable" and "127.0.0.1" in result.detail


@pytest.mark.e2e
def test_evidence_of_a_prometheus_without_the_canarys_series_holds_no_zeros(empty_prometheus):
    config = load_stack("staging", FIXTURE)
    deployed = rollout_state(config, "staging")
    evidence = collect(config, "staging", PrometheusClient(empty_prometheus.url), deployed, now(), "test")
    queries = evidence["services"]["genesis"]["queries"]
    assert {m: q["status"] for m, q in queries.items()} == {
        "requests": "empty",
        "errorRatio": "empty",
        "latencyP95Seconds": "empty",
        "latencyP99Seconds": "empty",
        "consecutiveFailedHealthChecks": "empty",
        # The counts the gate judges with confidence, of both tracks: no requests is no data, never 0.
        **dict.fromkeys(("errors", "latencyP95SlowRequests", "latencyP99SlowRequests", "stableRequests",
                         "stableErrors", "stableLatencyP95SlowRequests", "stableLatencyP99SlowRequests",
                         "stableErrorRatio", "stableLatencyP95Seconds", "stableLatencyP99Seconds"), "empty"),
    }
    assert queries["latencyP95SlowRequests"]["seconds"] == 0.5 and queries["stableLatencyP99SlowRequests"]["seconds"] == 1
    assert 'no histogram bucket le="0.5"' in queries["latencyP95SlowRequests"]["detail"]
    assert all(q["value"] is None for q in queries.values())
    assert '"stageWeight": 10' in dumps(evidence)


@pytest.mark.e2e
def test_a_service_missing_from_the_deployed_state_gets_no_queries(empty_prometheus):
    config = load_stack("staging", FIXTURE)
    evidence = collect(config, "staging", PrometheusClient(empty_prometheus.url), None, now(), "nothing deployed")
    assert evidence["deployedState"] is None
    assert evidence["services"]["genesis"]["queries"] == {}


@pytest.mark.e2e
def test_a_stage_that_has_not_begun_is_not_queried(empty_prometheus):
    config = load_stack("staging", FIXTURE)
    deployed = rollout_state(config, "staging")
    before_the_stage = datetime(2026, 11, 18, 8, 0, tzinfo=timezone.utc)
    evidence = collect(config, "staging", PrometheusClient(empty_prometheus.url), deployed, before_the_stage, "test")
    assert {q["status"] for q in evidence["services"]["genesis"]["queries"].values()} == {"error"}


@pytest.mark.parametrize(
    "samples, longest",
    [
        ([[1, 1, 1]], 0),
        ([[1, 0, 0, 1, 0]], 2),
        ([[0, 0, 0]], 3),
        ([[1, 0, 1], [0, 0, 0, 0, 1]], 4),
    ],
    ids=["all passed", "two failures in a row", "every check failed", "the worst of two probe series"],
)
def test_the_longest_run_of_failed_health_checks(samples, longest):
    series = [{"values": [[i * 15, str(v)] for i, v in enumerate(values)]} for values in samples]
    assert longest_failure_run(series) == longest


def test_the_recorded_prometheus_url_carries_no_credentials():
    assert public_url("https://ci:s3cret@prometheus.example.com:9090/prom?x=1") == "https://prometheus.example.com:9090/prom"


def test_stale_collection_time_is_kept_as_collected():
    config = load_stack("staging", FIXTURE)
    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    evidence = collect(config, "staging", PrometheusClient(f"http://127.0.0.1:{closed_port()}", retry=Retry(deadline_s=1)),
                       rollout_state(config, "staging"), at, "test")
    assert evidence["collectedAt"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_queries_read_the_stacks_own_metric_names():
    from rollout.ops.evidence import queries

    config = load_stack("staging", FIXTURE)
    renamed = config.model_copy(update={"metrics": config.metrics.model_copy(update={
        "requests_total": "app_requests_total",
        "request_duration_bucket": "app_latency_seconds_bucket",
        "probe_success": "blackbox_ok",
    })})
    text = "\n".join(queries(renamed, "genesis", 600).values())
    for name in ("app_requests_total{", "app_latency_seconds_bucket{", "blackbox_ok{"):
        assert name in text
    for default in ("http_requests_total", "http_request_duration_seconds_bucket", "probe_success"):
        assert default not in text
    assert text.count('service="genesis",track="canary"') == 12 and "[600s]" in text
    assert text.count('service="genesis",track="stable"') == 12
