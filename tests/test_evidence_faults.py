"""`rollout evidence` against a Prometheus that is down, slow, erroring or has no data.

Each fault is recorded in the evidence as what happened, never as a number;
an advance with that evidence is refused and leaves the stack file as it was;
a rollback still goes through. A Prometheus that fails a few times and then
answers is retried through, and the evidence says how many tries it took.

Prometheus is a local server on 127.0.0.1 speaking its query API
(tests/servers.py FlakyServer); tests/test_evidence.py covers the same outcomes
against a real Prometheus.
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

import pytest

from figures import count
from rollout.cli import main
from rollout.evidence import PrometheusClient, collect, dumps
from rollout.http_retry import Retry
from rollout.loader import load_file
from rollout.state import rollout_state
from servers import FlakyServer, free_port

SERVICE = "genesis"
STACK = "staging"
QUICK = Retry(deadline_s=3, timeout_s=0.5, base_s=0.01, cap_s=0.05)

#: A canary well within every budget of the staging stack.
HEALTHY = {
    "requests": 50000.0,
    "errorRatio": 0.0001,
    "latencyP95Seconds": 0.08,
    "latencyP99Seconds": 0.2,
}


def _measure(promql: str) -> str:
    if promql.startswith("histogram_quantile(0.95"):
        return "latencyP95Seconds"
    if promql.startswith("histogram_quantile(0.99"):
        return "latencyP99Seconds"
    if "or vector(0)" in promql:
        return "errorRatio"
    if promql.startswith("sum(increase("):
        return "requests"
    return "consecutiveFailedHealthChecks"


def prometheus_answering(value_of):
    """A query API whose answer to each measure's query is ``value_of(measure)``.

    A string is the sample value as Prometheus writes it ("NaN", "0.1"); None is
    an empty result. Health checks answer a matrix of passing probes.
    """

    def answer(method, path, body):
        if not path.startswith("/api/v1/query"):
            return 404, b"{}"
        promql = urllib.parse.parse_qs(body.decode())["query"][0]
        measure = _measure(promql)
        value = value_of(measure)
        if measure == "consecutiveFailedHealthChecks":
            values = [] if value is None else [[1000 + 15 * i, "1"] for i in range(20)]
            data = {"resultType": "matrix", "result": [{"metric": {}, "values": values}] if values else []}
        else:
            data = {"resultType": "vector", "result": [] if value is None else [{"metric": {}, "value": [1000, value]}]}
        return 200, json.dumps({"status": "success", "data": data}).encode()

    return answer


def healthy(measure):
    return "1" if measure == "consecutiveFailedHealthChecks" else repr(HEALTHY[measure])


def evidence_from(url: str, project: Path, retry: Retry = QUICK) -> dict:
    config = load_file(project / "stacks" / f"Pulumi.{STACK}.yaml", project)
    deployed = rollout_state(config, STACK)
    at = datetime.now(timezone.utc).replace(microsecond=0)
    return collect(config, STACK, PrometheusClient(url, retry=retry), deployed, at, "the stack file")


def run(project: Path, capsys, *args: str) -> tuple[int, str]:
    code = main(["--project", str(project), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


FAULTS = [
    pytest.param("down", None, "unreachable", "Prometheus was unreachable", id="Prometheus down is unreachable"),
    pytest.param("slow", [("slow", 2)] * 40, "timeout", "Prometheus did not answer in time",
                 id="Prometheus slower than the timeout is a timeout"),
    pytest.param("5xx", [503] * 200, "error", "Prometheus answered with an error",
                 id="Prometheus answering 503 past the deadline is an error"),
    pytest.param("4xx", [400] * 10, "error", "Prometheus answered with an error",
                 id="a query Prometheus refuses is an error at the first try"),
    pytest.param("nan", "NaN", "nan", "no data (the query returned NaN)", id="NaN is recorded as NaN, not 0"),
    pytest.param("empty", None, "empty", "no data (the query returned no series)", id="no series is empty, not 0"),
]


@pytest.mark.parametrize("fault, how, status, why", FAULTS)
def test_a_faulty_prometheus_is_recorded_the_advance_refused_and_the_rollback_goes_through(
    project, tmp_path, capsys, fault, how, status, why
):
    if fault == "down":
        evidence = evidence_from(f"http://127.0.0.1:{free_port()}", project)
    elif fault in ("nan", "empty"):
        with FlakyServer([], prometheus_answering(lambda measure: how)) as api:
            evidence = evidence_from(api.url, project)
    else:
        with FlakyServer(how, prometheus_answering(healthy)) as api:
            evidence = evidence_from(api.url, project)
    queries = evidence["services"][SERVICE]["queries"]
    traffic = {m: q for m, q in queries.items() if m != "consecutiveFailedHealthChecks" or fault != "nan"}
    assert {q["status"] for q in traffic.values()} == {status}, queries
    assert all(q["value"] is None for q in queries.values() if q["status"] != "ok"), "never recorded as a number"
    if fault in ("down", "slow", "5xx"):
        # The first query waits out the deadline; once Prometheus gave no answer
        # the next ones try once each.
        assert queries["requests"]["tries"] > 1
    if fault == "4xx":
        assert {q["tries"] for q in queries.values()} == {1}, "a 4xx is not retried"

    evidence_file = tmp_path / "evidence.json"
    evidence_file.write_text(dumps(evidence))
    stack_file = project / "stacks" / f"Pulumi.{STACK}.yaml"
    before = stack_file.read_bytes()
    code, output = run(project, capsys, "advance", "--stack", STACK, "--evidence", str(evidence_file))
    assert code == 1, output
    assert f"rollout-canary-within-budget (service {SERVICE}): error ratio: {why}" in output
    assert stack_file.read_bytes() == before

    code, output = run(project, capsys, "rollback", "--stack", STACK, "--reason", f"Prometheus {fault}")
    assert code == 0, output
    assert f"{SERVICE}: 10% -> 0%" in output
    count("faults: gate evidence", "Prometheus faults recorded as such", 1)
    count("faults: gate evidence", "advances refused on that evidence", 1)
    count("faults: gate evidence", "rollbacks that went through anyway", 1)


def test_a_prometheus_that_fails_a_few_times_then_answers_gives_numbers_and_the_tries(project, capsys):
    with FlakyServer([503, "reset", ("slow", 2)], prometheus_answering(healthy)) as api:
        evidence = evidence_from(api.url, project)
    queries = evidence["services"][SERVICE]["queries"]
    assert {m: q["status"] for m, q in queries.items()} == dict.fromkeys(queries, "ok")
    assert queries["requests"]["tries"] == 4
    assert {q["tries"] for m, q in queries.items() if m != "requests"} == {1}
    assert queries["errorRatio"]["value"] == HEALTHY["errorRatio"]
    count("faults: HTTP calls", "faults injected", 3)
    count("faults: gate evidence", "evidence collected through transient faults", 1)


def test_the_cli_says_how_many_tries_a_query_took(project, tmp_path, capsys):
    with FlakyServer([503, 503], prometheus_answering(healthy)) as api:
        code, output = run(project, capsys, "evidence", "--stack", STACK, "--prometheus", api.url,
                           "--deployed-state", str(_deployed_state_file(project, tmp_path)),
                           "--out", str(tmp_path / "e.json"), "--deadline", "10")
    assert code == 0, output
    assert "canary requests: 50000 (after 3 tries)" in output
    count("faults: HTTP calls", "faults injected", 2)


def _deployed_state_file(project: Path, tmp_path: Path) -> Path:
    config = load_file(project / "stacks" / f"Pulumi.{STACK}.yaml", project)
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"rolloutState": rollout_state(config, STACK)}))
    return path
