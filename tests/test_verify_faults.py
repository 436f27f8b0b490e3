"""`rollout verify` against components that answer garbled, trickling or oddly shaped: each is named.

The components are local servers on 127.0.0.1 (tests/servers.py): a raw TCP
server for wire-level faults, FlakyServer for well-framed answers of an
unexpected shape. Whatever they do, verify exits 1 naming the component and what
it did, never 3.
"""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import FIXTURE
from rollout.build.alertmanager import alertmanager_config
from figures import count
from rollout.cli import main
from rollout.ops.http import Retry
from rollout.load.stack import load_stack
from rollout.ops.verify import verify
from servers import FlakyServer, RawServer, raw_answer

STACK = "staging"
QUICK = Retry(deadline_s=1.5, timeout_s=0.5, base_s=0.01, cap_s=0.05)


def healthy(method, path, body):
    return (200, b"OK") if path in ("/-/healthy", "/-/ready") else (404, b"{}")


def _trickle(request, send, stopped):
    send(raw_answer(headers=[("Content-Length", "1000")]))
    while not stopped.wait(0.2):
        send(b" ")


WIRE_FAULTS = [
    pytest.param(lambda r, send, s: send(raw_answer(headers=[("Content-Length", "50")], body=b"OK")),
                 "closed early", id="a body shorter than its Content-Length"),
    pytest.param(lambda r, send, s: send(b"HTTP/1.1 OK\r\n\r\n"), "malformed status line", id="a malformed status line"),
    pytest.param(lambda r, send, s: send(raw_answer(headers=[(f"X-{i}", "y") for i in range(120)])),
                 "too many headers", id="too many headers"),
    pytest.param(_trickle, "deadline", id="an answer a byte at a time"),
]


@pytest.mark.parametrize("component", ["prometheus", "alertmanager", "grafana"])
@pytest.mark.parametrize("respond, why", WIRE_FAULTS)
def test_a_component_garbling_its_answers_is_named_and_verify_exits_1(capsys, component, respond, why):
    with RawServer(respond) as bad, FlakyServer([], healthy) as good:
        urls = {"prometheus": good.url, "alertmanager": good.url, "grafana": good.url, component: bad.url}
        code = main(["--project", str(FIXTURE), "verify", "--stack", STACK, "--prometheus", urls["prometheus"],
                     "--alertmanager", urls["alertmanager"], "--grafana", urls["grafana"], "--wait", "0",
                     "--deadline", "1.5", "--timeout", "0.5"])
    out = capsys.readouterr()
    failed = [line for line in out.out.splitlines() if line.startswith("FAILED")]
    assert code == 1, out
    assert any(line.startswith(f"FAILED  {component}: not reachable at {bad.url}") and why in line for line in failed), failed
    assert "internal error" not in out.out + out.err
    count("faults: verify", "components garbling their answers, named", 1)


def _prometheus(targets=None, labels=None):
    def answer(method, path, body):
        if path in ("/-/healthy", "/-/ready"):
            return 200, b"OK"
        if path.startswith("/api/v1/targets"):
            return 200, targets if isinstance(targets, bytes) else json.dumps(targets).encode()
        if path.startswith("/api/v1/label/"):
            return 200, json.dumps(labels if labels is not None else {"status": "success", "data": []}).encode()
        return 200, json.dumps({"status": "success", "data": {"groups": []}}).encode()

    return answer


PROMETHEUS_SHAPES = [
    pytest.param({"data": {"activeTargets": [[1, "2"]]}}, None, id="targets that are lists"),
    pytest.param({"data": {"activeTargets": [{"labels": []}]}}, None, id="labels that are a list"),
    pytest.param({"data": []}, None, id="data that is a list"),
    pytest.param([], None, id="a document that is a list"),
    pytest.param(b'{"data": ' + b"[" * 30000 + b"]" * 30000 + b"}", None, id="JSON nested thirty thousand deep"),
    pytest.param({"data": {"activeTargets": []}}, {"data": [True, "5_0000", None, [], {}]},
                 id="bucket bounds that are not numbers"),
    pytest.param({"data": {"activeTargets": []}}, {"data": 7}, id="label values that are a number"),
]


@pytest.mark.parametrize("targets, labels", PROMETHEUS_SHAPES)
def test_prometheus_answering_an_unexpected_shape_is_named(targets, labels):
    with FlakyServer([], _prometheus(targets, labels)) as prom, FlakyServer([], healthy) as am:
        report = verify(load_stack(STACK, FIXTURE), STACK, prom.url, am.url, wait_s=0, retry=QUICK)
    assert any(line.startswith("prometheus: ") for line in report.failed), report.failed


def _alertmanager(original=None, alerts=None):
    def answer(method, path, body):
        if path in ("/-/healthy", "/-/ready"):
            return 200, b"OK"
        if path.startswith("/api/v2/status"):
            return 200, json.dumps({"config": {"original": original}}).encode()
        return 200, json.dumps(alerts).encode()

    return answer


#: A route tree of 2**24 routes in a few hundred bytes: each level's routes are the level below, twice.
BOMB = "l0: &l0 {receiver: x}\n" + "".join(f"l{i}: &l{i} {{routes: [*l{i - 1}, *l{i - 1}]}}\n" for i in range(1, 25))
ALERTMANAGER_SHAPES = [
    pytest.param("route: {routes: [" * 2000 + "]}" * 2000, [], id="routes nested two thousand deep"),
    pytest.param("route:\n  routes: &r [{routes: []}]\nreceivers: *r\n", [], id="an alias in the config"),
    pytest.param(BOMB + "route: *l24\n", [], id="an alias bomb"),
    pytest.param("[1, 2]", [], id="a config that is a list"),
    pytest.param(None, [], id="a config that is null"),
    pytest.param("route: {}\nreceivers: []\ninhibit_rules: []\n", {"a": 1}, id="alerts that are an object"),
    pytest.param("route: {}\nreceivers: []\ninhibit_rules: []\n", [["x"]], id="alerts that are lists"),
]


@pytest.mark.parametrize("original, alerts", ALERTMANAGER_SHAPES)
def test_alertmanager_answering_an_unexpected_shape_is_named(original, alerts):
    with FlakyServer([], healthy) as prom, FlakyServer([], _alertmanager(original, alerts)) as am:
        report = verify(load_stack(STACK, FIXTURE), STACK, prom.url, am.url, wait_s=0, retry=QUICK)
    shown = [line for line in report.failed if line.startswith("alertmanager: ")]
    assert any("unexpected shape" in line for line in shown), report.failed
    if "&" in (original or ""):
        assert any("uses YAML aliases" in line for line in shown), shown
    count("faults: verify", "answers of an unexpected shape, named", 1)


def _replace_a_rule(rules: list) -> None:
    rules[2] = {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="info"'], "equal": ["alertname"]}


#: Edits of the rendered inhibit rules, and whether Alertmanager loading them is "the rendered one".
INHIBITION_EDITS = [
    pytest.param(lambda rules: None, True, id="the rendered rules"),
    pytest.param(lambda rules: rules.reverse(), True, id="the rendered rules in another order"),
    pytest.param(lambda rules: rules[0].update(equal=["alertname"]), False, id="a rule that needs fewer equal labels"),
    pytest.param(lambda rules: rules[1].update(target_matchers=['alertname="ServiceDown"']), False,
                 id="a rule that silences another alert"),
    pytest.param(_replace_a_rule, False, id="a rule replaced by another"),
    pytest.param(lambda rules: rules.pop(), False, id="a rule missing"),
]


@pytest.mark.parametrize("edit, same", INHIBITION_EDITS)
def test_inhibit_rules_other_than_the_rendered_ones_fail_verify(edit, same):
    """Each inhibit rule is compared, not only their count: a wrong one silences an alert that should reach someone."""
    config = load_stack(STACK, FIXTURE)
    document = json.loads(json.dumps(alertmanager_config(config)))
    edit(document["inhibit_rules"])
    with FlakyServer([], healthy) as prom, FlakyServer([], _alertmanager(yaml.safe_dump(document), [])) as am:
        report = verify(config, STACK, prom.url, am.url, wait_s=0, retry=QUICK)
    lines = [line for line in report.passed + report.failed if line.startswith("alertmanager: the loaded config")]
    if same:
        assert lines == ["alertmanager: the loaded config routes and inhibits like the rendered one"], report.failed
    else:
        assert lines == ["alertmanager: the loaded config is not the rendered one (inhibit rules differ)"], lines


def test_grafana_health_of_a_huge_object_is_shown_short():
    def grafana(method, path, body):
        return 200, json.dumps({"database": "down", "junk": "x" * 100000}).encode()

    with FlakyServer([], healthy) as prom, FlakyServer([], healthy) as am, FlakyServer([], grafana) as graf:
        report = verify(load_stack(STACK, FIXTURE), STACK, prom.url, am.url, graf.url, wait_s=0, retry=QUICK)
    line = next(line for line in report.failed if line.startswith("grafana: "))
    assert len(line) < 300


def test_what_a_component_says_reaches_the_terminal_on_one_line(capsys):
    """A target's lastError with a newline could forge a line such as "stack staging: healthy"."""
    forged = "refused\nstack staging: healthy\x1b[2K\r"
    targets = {"data": {"activeTargets": [{"labels": {"job": "prometheus", "instance": "p\u2028q"}, "health": "down",
                                           "lastError": forged}]}}
    with FlakyServer([], _prometheus(targets)) as prom, FlakyServer([], healthy) as am:
        code = main(["--project", str(FIXTURE), "verify", "--stack", STACK, "--prometheus", prom.url,
                     "--alertmanager", am.url, "--wait", "0", "--deadline", "1.5", "--timeout", "0.5"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[-1] == "stack staging: 7 check(s) failed" or out.splitlines()[-1].endswith("check(s) failed")
    assert not any(line == "stack staging: healthy\x1b[2K\r" or line.startswith("stack staging: healthy")
                   for line in out.splitlines())
    assert "refused\\nstack staging: healthy\\x1b[2K\\r" in out and "p\\u2028q" in out
    assert all(ch == "\n" or ch.isprintable() for ch in out)
