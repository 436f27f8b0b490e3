"""``rollout relay``: Alertmanager's webhook in, the forge's repository_dispatch out.

The relay runs as a process (``rollout relay``) on 127.0.0.1; the forge is a
local stand-in that records each request's method, path, token and payload.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest

from rollout.ops.http import Retry
from rollout.ops.relay import BadPayload, Forge, Metrics, triggers
from servers import ForgeStandIn, start_relay

RELAY_TOKEN = "relay-token-3f9a1c"
FORGE_TOKEN = "ghp_forge-token-77b2e0"
ROLLOUT = str(Path(sys.executable).with_name("rollout"))


def alert(name="CanaryErrorRateHigh", status="firing", rollback=True, service="genesis", starts="2026-12-02T10:00:00Z", fingerprint="a1"):
    labels = {"alertname": name, "service": service, "track": "canary", "severity": "critical"}
    if rollback:
        labels["rollback"] = "true"
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"Canary of {service} fails"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }


def payload(*alerts, status="firing"):
    return {
        "version": "4",
        "groupKey": '{}/{rollback="true"}:{alertname="CanaryErrorRateHigh", service="genesis"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "rollback-webhook",
        "groupLabels": {"alertname": "CanaryErrorRateHigh", "service": "genesis"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def post(relay_url: str, body, token: str | None = RELAY_TOKEN) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{relay_url}/webhook", data=data, method="POST", headers={"Content-Type": "application/json"})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def metrics(relay_url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{relay_url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


# --- the payload -------------------------------------------------------------------


def test_only_firing_rollback_triggers_with_a_service_count():
    found = triggers(
        payload(
            alert(fingerprint="f1"),
            alert(status="resolved", fingerprint="f2"),
            alert(name="ServiceErrorRateHigh", rollback=False, fingerprint="f3"),
            alert(service="", fingerprint="f4"),
        )
    )
    assert [(t.service, t.alertname, t.starts_at) for t in found] == [("genesis", "CanaryErrorRateHigh", "2026-12-02T10:00:00Z")]
    assert found[0].client_payload("staging") == {
        "stack": "staging",
        "service": "genesis",
        "reason": "CanaryErrorRateHigh firing since 2026-12-02T10:00:00Z",
    }


def test_a_new_firing_of_the_same_alert_is_a_new_trigger():
    first, again = triggers(payload(alert(), alert(starts="2026-12-02T11:00:00Z")))
    assert first.key != again.key


@pytest.mark.parametrize("body", [[], {"version": "3", "alerts": []}, {"version": "4"}, {"version": "4", "alerts": [1]}])
def test_anything_but_a_v4_payload_is_refused(body):
    with pytest.raises(BadPayload):
        triggers(body)


# --- the forge call's retries ---------------------------------------------------------


def _on_own_loop(coroutine):
    """Run a coroutine on a loop of its own. (asyncio.run would leave the main thread
    without a current loop, which the Pulumi harness of later tests asks for.)"""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def _forge_with(answers: list, retry: Retry) -> tuple[Forge, list, list]:
    seen, sleeps = [], []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0) if answers else 204
        if answer == "reset":
            raise httpx.ConnectError("reset")
        return httpx.Response(answer)

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    forge = Forge("http://forge.invalid/api/", "example/rollout", FORGE_TOKEN, retry, Metrics(),
                  transport=httpx.MockTransport(handler), sleep=sleep, jitter=lambda low, high: high)
    return forge, seen, sleeps


def test_transient_forge_failures_are_retried_with_growing_backoff_and_counted():
    forge, seen, sleeps = _forge_with([503, "reset", 429], Retry(deadline_s=60, base_s=0.5, cap_s=8))
    ok, _ = _on_own_loop(forge.dispatch({"event_type": "rollback"}))
    assert ok and len(seen) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert str(seen[0].url) == "http://forge.invalid/api/repos/example/rollout/dispatches"
    assert forge.metrics.forge_errors._value.get() == 3


def test_a_refusal_is_not_retried():
    forge, seen, sleeps = _forge_with([422], Retry(deadline_s=60))
    ok, what = _on_own_loop(forge.dispatch({}))
    assert not ok and len(seen) == 1 and sleeps == [] and "HTTP 422" in what


def test_no_try_starts_after_the_deadline():
    forge, seen, sleeps = _forge_with([500] * 20, Retry(deadline_s=3, base_s=1, cap_s=8, max_tries=20))
    ok, _ = _on_own_loop(forge.dispatch({}))
    # Sleeps of 1 and 2 s fit in 3 s; the next (4 s) would pass the deadline.
    assert not ok and sleeps == [1, 2] and len(seen) == 3



def _forge_answering_then_silent(first: int, retry: Retry) -> Forge:
    calls = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(first)
        await asyncio.sleep(10)
        return httpx.Response(204)

    async def no_sleep(seconds: float) -> None:
        pass

    return Forge("http://forge.invalid/api/", "example/rollout", FORGE_TOKEN, retry, Metrics(),
                 transport=httpx.MockTransport(handler), sleep=no_sleep, jitter=lambda low, high: high)


def test_a_try_the_deadline_cuts_short_does_not_hide_why_the_one_before_failed():
    forge = _forge_answering_then_silent(503, Retry(deadline_s=60, timeout_s=1, base_s=0.1, cap_s=0.1))

    async def dispatch():
        return await forge.dispatch({}, deadline=asyncio.get_running_loop().time() + 0.3)

    ok, what = _on_own_loop(dispatch())
    assert not ok and what.startswith("HTTP 503 after 2 tries"), what


def test_a_try_that_times_out_within_its_own_timeout_is_what_is_reported():
    forge = _forge_answering_then_silent(503, Retry(deadline_s=5, timeout_s=0.2, base_s=0.1, cap_s=0.1, max_tries=2))
    ok, what = _on_own_loop(forge.dispatch({}))
    assert not ok and what.startswith("no answer within 0.2s after 2 tries"), what


# --- the relay as a process -------------------------------------------------------------


@pytest.fixture
def relay_and_forge(project):
    with ForgeStandIn() as forge, start_relay("staging", forge.url, project, RELAY_TOKEN, FORGE_TOKEN) as relay:
        yield relay, forge


def test_a_firing_trigger_is_dispatched_once(relay_and_forge):
    relay, forge = relay_and_forge
    status, body = post(relay.url, payload(alert()))
    assert (status, body["dispatched"]) == (200, ["genesis"])
    (sent,) = forge.requests
    assert sent["method"] == "POST"
    assert sent["path"] == "/repos/example/rollout/dispatches"
    assert sent["token"] == FORGE_TOKEN
    assert sent["payload"] == {
        "event_type": "rollback",
        "client_payload": {"stack": "staging", "service": "genesis", "reason": "CanaryErrorRateHigh firing since 2026-12-02T10:00:00Z"},
    }
    # Alertmanager sends the group again (repeat_interval, a new alert in the group): nothing more.
    status, body = post(relay.url, payload(alert()))
    assert (status, body["dispatched"], body["repeats"]) == (200, [], 1)
    assert len(forge.requests) == 1
    figures = metrics(relay.url)
    assert figures['rollout_relay_dispatches_total{service="genesis"}'] == 1
    assert figures["rollout_relay_repeats_total"] == 1
    assert figures["rollout_relay_last_success_timestamp_seconds"] > 0


@pytest.mark.parametrize("token", [None, "wrong", RELAY_TOKEN + "x", ""])
def test_a_request_without_the_token_is_refused_and_sends_nothing(relay_and_forge, token):
    relay, forge = relay_and_forge
    status, _ = post(relay.url, payload(alert()), token=token)
    assert status == 401
    assert forge.requests == []
    assert metrics(relay.url)['rollout_relay_rejected_requests_total{reason="unauthorized"}'] == 1


def test_resolved_and_other_alerts_send_nothing(relay_and_forge):
    relay, forge = relay_and_forge
    assert post(relay.url, payload(alert(status="resolved"), status="resolved"))[0] == 200
    assert post(relay.url, payload(alert(name="ServiceDown", rollback=False)))[0] == 200
    assert post(relay.url, b"not json")[0] == 400
    assert forge.requests == []


def test_tokens_are_never_logged(relay_and_forge):
    relay, forge = relay_and_forge
    post(relay.url, payload(alert()))
    post(relay.url, payload(alert()), token="a-wrong-token")
    relay.stop()
    log = relay.log_text()
    assert "dispatched rollback of genesis" in log
    assert RELAY_TOKEN not in log and FORGE_TOKEN not in log and "a-wrong-token" not in log


def test_forge_failures_are_retried_counted_and_answered_502_until_one_goes_through(project):
    with ForgeStandIn(faults=[500, 500, 500]) as forge, start_relay(
        "staging", forge.url, project, RELAY_TOKEN, FORGE_TOKEN, extra_args=("--deadline", "0.5", "--timeout", "0.5")
    ) as relay:
        status, body = post(relay.url, payload(alert()))
        tried = len(forge.requests)
        # Every try failed within the deadline: Alertmanager is told to send again.
        assert (status, body["failed"]) == (502, ["genesis"]) and tried >= 1
        forge.faults.clear()
        status, body = post(relay.url, payload(alert()))
        assert (status, body["dispatched"]) == (200, ["genesis"])
        assert len(forge.accepted) == 1
        figures = metrics(relay.url)
    assert figures["rollout_relay_forge_errors_total"] == tried
    assert figures['rollout_relay_dispatch_failures_total{service="genesis"}'] == 1
    assert figures['rollout_relay_dispatches_total{service="genesis"}'] == 1


def test_healthz(relay_and_forge):
    relay, _ = relay_and_forge
    with urllib.request.urlopen(f"{relay.url}/healthz", timeout=10) as answer:
        assert answer.status == 200


# --- bad input and environment ------------------------------------------------------------


def _run(project, args, env):
    return subprocess.run([ROLLOUT, "--project", str(project), "relay", *args], capture_output=True, text=True, env=env, timeout=60)


BASE_ARGS = ["--stack", "staging", "--listen", "127.0.0.1:1", "--forge-url", "http://127.0.0.1:1", "--repository", "example/rollout"]


@pytest.mark.parametrize("name", ["ROLLOUT_RELAY_TOKEN", "GITHUB_TOKEN"])
def test_a_missing_token_is_an_environment_problem(project, name):
    env = {"PATH": "/usr/bin:/bin", "ROLLOUT_RELAY_TOKEN": RELAY_TOKEN, "GITHUB_TOKEN": FORGE_TOKEN}
    del env[name]
    done = _run(project, BASE_ARGS, env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"rollout: relay: {name} is not set: the relay needs it"]


@pytest.mark.parametrize(
    "option,value",
    [("--listen", "127.0.0.1"), ("--listen", "127.0.0.1:99999"), ("--forge-url", "ftp://x"), ("--repository", "no-slash")],
)
def test_bad_arguments_are_exit_2_with_one_line(project, option, value):
    args = list(BASE_ARGS)
    args[args.index(option) + 1] = value
    done = _run(project, args, {"PATH": "/usr/bin:/bin", "ROLLOUT_RELAY_TOKEN": RELAY_TOKEN, "GITHUB_TOKEN": FORGE_TOKEN})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert option in line and "Traceback" not in done.stderr
