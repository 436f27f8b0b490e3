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
import math
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from figures import count
from rollout.cli import main
from rollout.ops.evidence import PrometheusClient, collect, dumps, sample_value
from rollout.ops.http import Retry
from rollout.load.stack import load_file
from rollout.model.state import rollout_state
from evidence_counts import counts
from servers import FlakyServer, closed_port

SERVICE = "genesis"
STACK = "staging"
QUICK = Retry(deadline_s=3, timeout_s=0.5, base_s=0.01, cap_s=0.05)

#: A canary well within every budget of the staging stack.
HEALTHY = {
    "requests": 50000.0,
    "errorRatio": 0.0001,
    "latencyP95Seconds": 0.08,
    "latencyP99Seconds": 0.2,
    **{m: float(v) for m, v in counts(50000, errors=0.0001, slow_p95=0.001).items()},
    "stableErrorRatio": 0.0001,
    "stableLatencyP95Seconds": 0.08,
    "stableLatencyP99Seconds": 0.2,
}


def _measure(promql: str) -> str:
    """Which measure of rollout.ops.evidence.queries a query is, by its shape."""
    stable = 'track="stable"' in promql
    prefix = (lambda name: "stable" + name[0].upper() + name[1:]) if stable else (lambda name: name)
    if promql.startswith("histogram_quantile(0.95"):
        return prefix("latencyP95Seconds")
    if promql.startswith("histogram_quantile(0.99"):
        return prefix("latencyP99Seconds")
    if 'le="+Inf"' in promql:
        return prefix("latencyP99SlowRequests" if 'le=~"1(' in promql else "latencyP95SlowRequests")
    if "or vector(0)" in promql:
        return "errorRatio"
    if promql.startswith("(") and stable:
        return "stableErrorRatio"
    if " * 0" in promql:
        return prefix("errors")
    if promql.startswith("sum(increase("):
        return prefix("requests")
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
    pytest.param("4xx", [400] * 40, "error", "Prometheus answered with an error",
                 id="a query Prometheus refuses is an error at the first try"),
    pytest.param("nan", "NaN", "nan", "no data (the query returned NaN)", id="NaN is recorded as NaN, not 0"),
    pytest.param("empty", None, "empty", "no data (the query returned no series)", id="no series is empty, not 0"),
]


@pytest.mark.parametrize("fault, how, status, why", FAULTS)
def test_a_faulty_prometheus_is_recorded_the_advance_refused_and_the_rollback_goes_through(
    project, tmp_path, capsys, fault, how, status, why
):
    if fault == "down":
        evidence = evidence_from(f"http://127.0.0.1:{closed_port()}", project)
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


def _every_query_answers(data) -> callable:
    """A query API that answers every query with ``data`` (the JSON's ``data``, or raw bytes)."""

    def answer(method, path, body):
        if isinstance(data, bytes):
            return 200, data
        return 200, json.dumps({"status": "success", "data": data}).encode()

    return answer


SHAPES = [
    pytest.param({"resultType": "vector", "result": [[1, "2"]]}, "is not an object", id="a vector of lists"),
    pytest.param({"resultType": "vector", "result": [{"metric": {}, "value": []}]}, "not [time, value]",
                 id="a sample with no value"),
    pytest.param({"resultType": "vector", "result": [{"metric": {}, "value": [1]}]}, "not [time, value]",
                 id="a sample of one element"),
    pytest.param({"resultType": "matrix", "result": ["a", "b"]}, "is not an object", id="a matrix of strings"),
    pytest.param({"resultType": "matrix", "result": [{"metric": {}, "values": "1"}]}, "not a list of samples",
                 id="values that are a string"),
    pytest.param({"resultType": "matrix", "result": [{"metric": {}, "values": [[1, True]]}]}, "not a sample value",
                 id="a matrix sample that is a boolean"),
    pytest.param({"resultType": "vector", "result": [{"metric": {}, "value": [1, True]}]}, "not a sample value: True",
                 id="a sample value true is not 1"),
    pytest.param({"resultType": "vector", "result": [{"metric": {}, "value": [1, "5_0000"]}]},
                 "not a sample value: '5_0000'", id="a sample value with an underscore is not 50000"),
    pytest.param({"resultType": "vector", "result": [{"metric": {}, "value": [1, 0.5]}]}, "not a sample value: 0.5",
                 id="a sample value that is a JSON number, not a string"),
    pytest.param({"resultType": "vector", "result": [{"metric": {}, "value": [1, " 1"]}]}, "not a sample value",
                 id="a sample value with a space"),
    pytest.param({"resultType": "vector", "result": [{"metric": {}, "value": [1, "infinity"]}]}, "not a sample value",
                 id="Python's infinity is not Prometheus' +Inf"),
    pytest.param({"resultType": "vector", "result": [{"metric": {}, "value": [True, "1"]}]}, "time is not a number",
                 id="a sample time that is a boolean"),
    pytest.param({"resultType": "vector", "result": [{"metric": [], "value": [1, "1"]}]}, "metric is not an object",
                 id="a metric that is a list"),
    pytest.param({"resultType": "vector", "result": {"a": 1}}, "not a list of series", id="a vector that is an object"),
    pytest.param({"resultType": "vector", "result": [{"metric": {}, "histogram": [1, {}]}]}, "native histogram",
                 id="a native histogram"),
    pytest.param({"resultType": 7, "result": []}, "resultType 7", id="a resultType that is a number"),
    pytest.param({"resultType": "vector"}, "not a list of series", id="no result"),
    pytest.param(b'{"status": "success", "data": ' + b"[" * 50000 + b"]" * 50000 + b"}", "nested too deeply",
                 id="JSON nested fifty thousand deep"),
    pytest.param(b'{"status": "success", "data": [1, 2]}', "data is not an object", id="data that is a list"),
    pytest.param(b'["success"]', "not a success", id="a document that is a list"),
    pytest.param(b'{"status": "error", "error": ["x"]}', "not a success", id="an error that is not text"),
]


@pytest.mark.parametrize("data, why", SHAPES)
def test_an_answer_of_an_unexpected_shape_is_an_error_never_a_crash_or_a_number(project, data, why):
    with FlakyServer([], _every_query_answers(data)) as api:
        evidence = evidence_from(api.url, project)
    record = evidence["services"][SERVICE]
    queries = record["queries"]
    assert {q["status"] for q in queries.values()} == {"error"}, queries
    assert all(q["value"] is None for q in queries.values())
    assert all(why in q["detail"] for q in queries.values()), queries
    assert record["trafficSince"] is None
    dumps(evidence)  # and the evidence can be written
    count("faults: gate evidence", "answers of an unexpected shape recorded as errors", 1)


@pytest.mark.parametrize(
    "text, value",
    [("1", 1.0), ("-0.5", -0.5), ("1e-3", 0.001), ("+Inf", math.inf), ("-Inf", -math.inf), ("2.", 2.0), (".5", 0.5)],
)
def test_sample_values_as_prometheus_writes_them_are_read(text, value):
    assert sample_value(text) == value


def test_a_sample_far_in_the_future_is_not_the_stage_taking_traffic(project):
    def answer(method, path, body):
        promql = urllib.parse.parse_qs(body.decode())["query"][0]
        if "[" in promql and ":" in promql.rsplit("[", 1)[1]:  # the share subquery
            data = {"resultType": "matrix", "result": [{"metric": {}, "values": [[1e300, "1"]]}]}
            return 200, json.dumps({"status": "success", "data": data}).encode()
        return prometheus_answering(healthy)(method, path, body)

    with FlakyServer([], answer) as api:
        evidence = evidence_from(api.url, project)
    assert evidence["services"][SERVICE]["trafficSince"] is None


def test_a_prometheus_trickling_its_answers_is_a_timeout_and_the_command_ends(project, tmp_path, capsys):
    """Each read gets a byte within --timeout; --deadline ends the first query, one timeout each the rest."""
    import threading

    from servers import RawServer, raw_answer

    def trickle(request, send, stopped):
        send(raw_answer(headers=[("Content-Length", "100000")]))
        while not stopped.wait(0.1):
            send(b" ")

    outcome = []
    out = tmp_path / "e.json"
    with RawServer(trickle) as api:
        argv = ["--project", str(project), "evidence", "--stack", STACK, "--prometheus", api.url,
                "--deployed-state", str(_deployed_state_file(project, tmp_path)), "--out", str(out),
                "--deadline", "1", "--timeout", "0.5"]
        thread = threading.Thread(target=lambda: outcome.append(main(argv)), daemon=True)
        thread.start()
        thread.join(120)
    assert outcome == [0], "the command was still running"
    queries = json.loads(out.read_text())["services"][SERVICE]["queries"]
    assert {q["status"] for q in queries.values()} == {"timeout"}, queries
    assert all("deadline" in q["detail"] for q in queries.values()), queries


# --- evidence files of any depth, size or number: exit 0, 1 or 2, never 3 ------------------


def _evidence_text(value_text: str) -> str:
    """An evidence file whose canary error ratio is ``value_text`` written as is."""
    return ('{"stack": "staging", "services": {"genesis": {"queries": {"errorRatio": '
            '{"status": "ok", "value": ' + value_text + '}}}}}')


ODD_EVIDENCE = {
    "100,000 nested arrays": "[" * 100_000 + "]" * 100_000,
    "100,000 nested objects": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "nesting inside the services": _evidence_text("[" * 5000 + "]" * 5000),
    "10^400 as an integer": _evidence_text("1" + "0" * 400),
    "-10^400 as an integer": _evidence_text("-1" + "0" * 400),
    "1e400": _evidence_text("1e400"),
    "-1e400": _evidence_text("-1e400"),
    "NaN": _evidence_text("NaN"),
    "Infinity": _evidence_text("Infinity"),
    "5000 digits": _evidence_text("9" * 5000),
    "10^400 as a live route weight": '{"stack": "staging", "services": {"genesis": {"liveRoute": {"canaryWeight": 1' + "0" * 400 + "}}}}",
    "not UTF-8": '{"stack": "\xff"}',
    "a lone bracket": "[",
}


@pytest.mark.parametrize("name", sorted(ODD_EVIDENCE))
@pytest.mark.parametrize("command", ["check", "advance"])
def test_an_odd_evidence_file_is_exit_2_with_one_line(project, tmp_path, capsys, name, command):
    path = tmp_path / "evidence.json"
    path.write_bytes(ODD_EVIDENCE[name].encode("latin-1") if name == "not UTF-8" else ODD_EVIDENCE[name].encode())
    code, output = run(project, capsys, command, "--stack", STACK, "--evidence", str(path))
    assert code == 2, output
    (line,) = [line for line in output.splitlines() if "--evidence" in line]
    assert str(path) in line and "internal error" not in output and "Traceback" not in output
    count("faults: evidence files", "odd evidence files tried", 1)


def test_an_evidence_file_over_the_cap_is_exit_2_without_being_read_whole(project, tmp_path, capsys):
    from rollout.model.jsontext import MAX_DOCUMENT_BYTES

    path = tmp_path / "evidence.json"
    with path.open("w") as out:
        out.write('{"stack": "staging", "padding": "')
        out.write("x" * (MAX_DOCUMENT_BYTES + 10))
        out.write('"}')
    code, output = run(project, capsys, "check", "--stack", STACK, "--evidence", str(path))
    assert code == 2 and "more than the" in output, output
    count("faults: evidence files", "odd evidence files tried", 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(1, 3000), number=st.one_of(st.integers(-(10 ** 500), 10 ** 500), st.floats(allow_nan=False)),
       opening=st.sampled_from(["[", '{"k":']))
def test_generated_evidence_files_end_in_0_1_or_2(project, tmp_path_factory, capsys, depth, number, opening):
    closing = "]" if opening == "[" else "}"
    text = _evidence_text(opening * depth + repr(number).replace("inf", "Infinity") + closing * depth)
    path = tmp_path_factory.mktemp("evidence") / "evidence.json"
    path.write_text(text)
    code, output = run(project, capsys, "check", "--stack", STACK, "--evidence", str(path))
    assert code in (0, 1, 2), output
    assert "internal error" not in output
    count("faults: evidence files", "odd evidence files tried", 1)
