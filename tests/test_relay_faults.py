"""`rollout relay` under a hostile network, as a process on 127.0.0.1 with stand-in servers.

Each fault of the rollback path: a Kubernetes API that trickles its answer or
never answers (the fast path), a forge that trickles its answer, its status line,
or sends 300 MB, and 1,100 clients trickling their request heads. Under each, a
firing trigger reaches the forge stand-in within ``--deadline`` plus one second,
exactly once; the time from the notification to the dispatch is kept as a figure
(tests/figures.py, printed at the end of the run and copied to docs/reliability.md).
"""

from __future__ import annotations

import json
import re
import resource
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from figures import count, longest, most
from servers import LOOPBACK, ForgeStandIn, KubeApiStandIn, start_relay
from test_relay import FORGE_TOKEN, RELAY_TOKEN, alert, metrics, payload, post

TOPIC = "faults: relay (seconds from a firing notification to its dispatch)"


def _timed_post(url: str, body, results: list, t0: float) -> None:
    status, answer = post(url, body)
    results.append((status, answer, time.monotonic() - t0, time.monotonic()))


def _dispatch_within(forge: ForgeStandIn, t0: float, deadline: float) -> float:
    """Seconds from ``t0`` to the forge stand-in getting the dispatch, once it did (at most deadline + 1 s)."""
    limit = t0 + deadline + 1.0
    while time.monotonic() < limit and not forge.requests:
        time.sleep(0.02)
    assert forge.requests, f"no dispatch reached the forge within {deadline} + 1 s"
    return forge.requests[0]["at"] - t0


# --- 1. the fast path ------------------------------------------------------------------------


@pytest.mark.parametrize("mode, deadline", [("trickle", 3), ("silent", 5)])
def test_a_kubernetes_api_that_trickles_or_never_answers_does_not_hold_the_dispatch(project, tmp_path, mode, deadline):
    with KubeApiStandIn(mode, tmp_path / "sa") as api, ForgeStandIn() as forge, start_relay(
        "staging", forge.url, project, RELAY_TOKEN, FORGE_TOKEN,
        extra_args=("--fast-path", "--namespace", "rollout-staging", "--deadline", str(deadline)), extra_env=api.env(),
    ) as relay:
        t0 = time.monotonic()
        status, answer = post(relay.url, payload(alert()))
        answered = time.monotonic() - t0
        took = _dispatch_within(forge, t0, deadline)
        time.sleep(1.0)
        assert len(forge.requests) == 1, forge.requests
        assert api.requests, "the fast path was tried"
        relay.stop()
        log = relay.log_text()
    assert (status, answer["dispatched"]) == (200, ["genesis"])
    assert took <= deadline / 3 + 1.0 and answered <= deadline + 1.0
    assert "fast path: the route of genesis was not updated within" in log
    longest(TOPIC, f"Kubernetes API {'trickling its answer' if mode == 'trickle' else 'never answering'} (--deadline {deadline})", took)


# --- 2. the forge ----------------------------------------------------------------------------


def test_a_forge_trickling_its_answer_dispatches_once_and_a_repeat_in_flight_is_not_called_delivered(project):
    deadline = 3
    with ForgeStandIn(answer="trickle") as forge, start_relay(
        "staging", forge.url, project, RELAY_TOKEN, FORGE_TOKEN, extra_args=("--deadline", str(deadline))
    ) as relay:
        t0, results = time.monotonic(), []
        first = threading.Thread(target=_timed_post, args=(relay.url, payload(alert()), results, t0))
        first.start()
        took = _dispatch_within(forge, t0, deadline)
        repeat_results: list = []
        repeat = threading.Thread(target=_timed_post, args=(relay.url, payload(alert()), repeat_results, time.monotonic()))
        repeat.start()
        first.join(timeout=deadline + 5)
        repeat.join(timeout=deadline + 5)
        assert len(forge.requests) == 1, forge.requests
    ((status, answer, seconds, first_end),) = results
    assert (status, answer["dispatched"]) == (200, ["genesis"]) and seconds <= deadline + 1.0
    ((again, again_answer, again_seconds, again_end),) = repeat_results
    # The repeat came while the dispatch was under way: it waited for its outcome (accepted).
    assert (again, again_answer["dispatched"], again_answer["repeats"]) == (200, [], 1)
    assert again_seconds <= deadline + 1.0 and again_end >= first_end - 0.2
    longest(TOPIC, f"forge trickling its answer (--deadline {deadline})", took)


def test_a_forge_trickling_its_status_line_is_given_up_by_the_deadline_and_not_sent_twice(project):
    deadline = 3
    with ForgeStandIn(answer="trickle-head") as forge, start_relay(
        "staging", forge.url, project, RELAY_TOKEN, FORGE_TOKEN, extra_args=("--deadline", str(deadline), "--timeout", "1")
    ) as relay:
        t0, results = time.monotonic(), []
        first = threading.Thread(target=_timed_post, args=(relay.url, payload(alert()), results, t0))
        first.start()
        took = _dispatch_within(forge, t0, deadline)
        time.sleep(0.3)
        status_again, answer_again = post(relay.url, payload(alert()))
        first.join(timeout=deadline + 5)
        requests = list(forge.requests)
    ((status, answer, seconds, _),) = results
    # Its outcome is unknown: Alertmanager is told to send again, and nothing calls it delivered.
    assert status == 502 and answer["failed"] == ["genesis"] and seconds <= deadline + 1.0
    assert status_again in (502, 503) and answer_again["dispatched"] == [] and answer_again["repeats"] == 0
    # The request reached the forge once: a try whose request was sent is not sent again.
    assert len(requests) == 1, requests
    longest(TOPIC, f"forge trickling its status line (--deadline {deadline})", took)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_a_300_mb_forge_answer_is_read_only_up_to_the_cap(project):
    deadline = 5
    with ForgeStandIn(answer="huge") as forge, start_relay(
        "staging", forge.url, project, RELAY_TOKEN, FORGE_TOKEN, extra_args=("--deadline", str(deadline))
    ) as relay:
        t0 = time.monotonic()
        status, answer = post(relay.url, payload(alert()))
        answered = time.monotonic() - t0
        took = _dispatch_within(forge, t0, deadline)
        peak = _rss_mb(relay.process.pid)
        time.sleep(0.5)
        sent = forge.body_bytes_sent
        assert len(forge.requests) == 1
    assert (status, answer["dispatched"]) == (200, ["genesis"]) and answered <= deadline + 1.0
    assert sent < 64 * 1024 * 1024, f"the relay took {sent} bytes of the answer"
    assert peak < 250, f"the relay's peak resident memory was {peak:.0f} MB"
    longest(TOPIC, f"forge sending 300 MB (--deadline {deadline})", took)
    most("faults: relay", "peak resident memory of the relay under a 300 MB forge answer (MB)", peak)
    most("faults: relay", "bytes of the 300 MB answer the relay took (MB, socket buffers included)", sent / 2**20)


# --- 3. slow clients ----------------------------------------------------------------------------


class SlowClients:
    """``n`` connections that each send a request line, then one header line every ``every_s``."""

    def __init__(self, port: int, n: int, every_s: float) -> None:
        self.port, self.n, self.every_s = port, n, every_s
        self.sockets: list[socket.socket] = []
        self.refused = 0
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(self.n):
            if self.stop.is_set():
                return
            try:
                sock = socket.create_connection((LOOPBACK, self.port), timeout=2)
                sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: relay\r\n")
                sock.setblocking(False)
                self.sockets.append(sock)
            except OSError:
                self.refused += 1
        while not self.stop.wait(self.every_s):
            for sock in self.open():
                try:
                    sock.send(b"X-Slow: 1\r\n")
                except OSError:
                    pass

    def open(self) -> list[socket.socket]:
        """The connections the relay has not closed."""
        alive = []
        for sock in list(self.sockets):
            try:
                if sock.recv(1024, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
                    continue
            except BlockingIOError:
                alive.append(sock)
                continue
            except OSError:
                continue
        return alive

    def __enter__(self) -> "SlowClients":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self._thread.join(timeout=30)
        for sock in self.sockets:
            sock.close()


def test_1100_slow_clients_neither_starve_the_webhook_nor_stay_connected(project):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    deadline = 3
    with ForgeStandIn() as forge, start_relay(
        "staging", forge.url, project, RELAY_TOKEN, FORGE_TOKEN, extra_args=("--deadline", str(deadline))
    ) as relay:
        port = int(relay.url.rsplit(":", 1)[1])
        with SlowClients(port, 1100, every_s=5) as slow:
            time.sleep(4)  # the slow clients are connected (or turned away)
            t0 = time.monotonic()
            with urllib.request.urlopen(f"{relay.url}/healthz", timeout=deadline + 1) as health:
                assert health.status == 200
            healthz_s = time.monotonic() - t0
            t0 = time.monotonic()
            status, answer = post(relay.url, payload(alert()))
            took = _dispatch_within(forge, t0, deadline)
            held_now = len(slow.open())
            time.sleep(12)  # past the head time limit (10 s)
            held_after = len(slow.open())
            figures = metrics(relay.url)
        time.sleep(1)
        assert len(forge.requests) == 1
        relay.stop()
        log = relay.log_text()
    assert (status, answer["dispatched"]) == (200, ["genesis"])
    assert healthz_s <= 1.0
    assert held_now <= 256 and held_after == 0, (held_now, held_after)
    assert figures["rollout_relay_connections_most"] <= 256
    assert "Too many open files" not in log and len(log.splitlines()) < 100
    longest(TOPIC, "1,100 clients trickling request heads (--deadline 3)", took)
    count("faults: relay", "slow connections opened", 1100)
    most("faults: relay", "most connections held at once under 1,100 slow clients", figures["rollout_relay_connections_most"])
    most("faults: relay", "slow connections still open 12 s later", held_after)


# --- 4. credentials ------------------------------------------------------------------------------


def test_credentials_in_the_forge_url_reach_no_log_line_and_go_as_basic_authentication(project):
    secret = "s3cret-forge-pass"
    with ForgeStandIn() as forge:
        url = forge.url.replace("http://", f"http://bot:{secret}@")
        with start_relay("staging", url, project, RELAY_TOKEN, FORGE_TOKEN) as relay:
            status, _ = post(relay.url, payload(alert()))
            relay.stop()
            log = relay.log_text()
        (sent,) = forge.requests
    assert status == 200
    assert sent["authorization"].startswith("Basic ")
    assert "relaying rollback triggers to http://127.0.0.1:" in log
    assert secret not in log and "bot:" not in log and FORGE_TOKEN not in log


def test_no_log_record_of_any_logger_holds_the_credentials(caplog):
    import asyncio
    import logging

    from rollout.ops.http import Retry
    from rollout.ops.relay import Forge, Metrics

    secret = "s3cret-in-every-logger"
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "asyncio", "rollout"):
        logging.getLogger(name).setLevel(logging.DEBUG)

    async def dispatch(url):
        forge = Forge(url, "example/rollout", secret + "-token", Retry(deadline_s=3, timeout_s=1), Metrics())
        try:
            return await forge.dispatch({"event_type": "rollback"})
        finally:
            await forge.close()

    with ForgeStandIn() as forge:
        loop = asyncio.new_event_loop()
        try:
            ok, _ = loop.run_until_complete(dispatch(forge.url.replace("http://", f"http://bot:{secret}@")))
        finally:
            loop.close()
    assert ok
    records = caplog.records
    assert any(r.name.startswith(("httpx", "httpcore")) for r in records), "the HTTP libraries did log"
    for record in records:
        assert secret not in record.getMessage() and secret not in str(record.args), record.getMessage()


def test_redaction_masks_userinfo_authorization_and_known_secrets():
    from rollout.ops.serving import redact

    text = "POST http://bot:pw@host/x Authorization: Bearer abc123 'authorization': 'Basic Ym90OnB3' tok-9"
    cleaned = redact(text, ("tok-9",))
    for secret in ("bot:pw", "abc123", "Ym90OnB3", "tok-9"):
        assert secret not in cleaned


# --- the guard itself, in process --------------------------------------------------------------


def test_the_rate_limited_log_keeps_a_burst_then_says_how_many_were_left_out():
    import logging

    from rollout.ops.serving import RateLimitedLog

    now = [0.0]
    limiter = RateLimitedLog(burst=3, window_s=10, clock=lambda: now[0])

    def record(message="Too many open files"):
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None, None)

    kept = [limiter.filter(record()) for _ in range(10_000)]
    assert kept.count(True) == 3
    now[0] = 11
    summary = record()
    assert limiter.filter(summary) and "9997 similar line(s) left out" in summary.getMessage()


# --- 5. webhook bodies ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def relay_for_bodies(tmp_path_factory):
    from stackfiles import build_project

    project = build_project(tmp_path_factory.mktemp("project"))
    with ForgeStandIn() as forge, start_relay("staging", forge.url, project, RELAY_TOKEN, FORGE_TOKEN) as relay:
        yield relay, forge


def _with_alert(**changes):
    one = alert(fingerprint="b0d1e5")
    one.update(changes)
    return payload(one)


def _with_labels(**labels):
    one = alert(fingerprint="b0d1e5")
    one["labels"].update(labels)
    return payload(one)


BAD_BODIES = {
    "200,000 nested arrays": b"[" * 200_000 + b"]" * 200_000,
    "nested arrays inside an annotation": json.dumps(_with_alert(annotations={"summary": "x"})).replace('"x"', "[" * 50 + "]" * 50).encode(),
    "startsAt [[[]]]": _with_alert(startsAt=[[[]]]),
    "startsAt not a time": _with_alert(startsAt="yesterday"),
    "fingerprint a list": _with_alert(fingerprint=["a"]),
    "fingerprint an object": _with_alert(fingerprint={"a": 1}),
    "a label value a number": _with_labels(track=1),
    "a label value null": _with_labels(track=None),
    "status unknown": _with_alert(status="pending"),
    "service ../../x": _with_labels(service="../../x"),
    "service upper case": _with_labels(service="Genesis"),
    "service too long": _with_labels(service="g" * 60),
    "service the stack does not have": _with_labels(service="payments"),
    "stack label of another stack": _with_labels(stack="production"),
    "stack label no stack could have": _with_labels(stack="../prod"),
    "alertname with a newline": _with_labels(alertname="Canary\nDispatched"),
    "10^400": json.dumps(payload(alert())).replace('"truncatedAlerts": 0', '"truncatedAlerts": 1' + "0" * 400).encode(),
    "version 4 as a number": {**payload(alert()), "version": 4},
    "alerts an object": {**payload(alert()), "alerts": {}},
    "not UTF-8": b'{"version": "4", "status": "\xff"}',
    "NaN": json.dumps(payload(alert())).replace('"truncatedAlerts": 0', '"truncatedAlerts": NaN').encode(),
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_a_malformed_body_is_400_one_log_line_and_no_dispatch(relay_for_bodies, name):
    relay, forge = relay_for_bodies
    before_log, before_sent = len(relay.log_text().splitlines()), len(forge.requests)
    status, answer = post(relay.url, BAD_BODIES[name])
    assert status == 400, answer
    time.sleep(0.05)
    new_lines = relay.log_text().splitlines()[before_log:]
    assert len(new_lines) == 1 and "refused a webhook request" in new_lines[0], new_lines
    assert len(forge.requests) == before_sent
    count("faults: relay", "malformed webhook bodies tried", 1)


def test_a_body_over_the_cap_is_refused_unread(relay_for_bodies):
    relay, forge = relay_for_bodies
    status, _ = post(relay.url, b'{"version": "4", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    assert status == 413
    count("faults: relay", "malformed webhook bodies tried", 1)


def test_generated_bodies_never_crash_the_relay_or_dispatch(relay_for_bodies):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    relay, forge = relay_for_bodies
    leaves = st.none() | st.booleans() | st.integers(-(10 ** 400), 10 ** 400) | st.floats(allow_nan=False) | st.text(max_size=20)
    values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                          max_leaves=20)
    keys = st.sampled_from(["status", "labels", "annotations", "startsAt", "endsAt", "fingerprint", "generatorURL"])
    sent_before = len(forge.requests)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(key=keys, value=values)
    def one(key, value):
        body = payload(alert(fingerprint="9e9e9e"))
        body["alerts"][0][key] = value
        try:
            data = json.dumps(body).encode()
        except ValueError:
            return
        status, _ = post(relay.url, data)
        assert status in (200, 400), status
        count("faults: relay", "malformed webhook bodies tried", 1)

    one()
    # What went out is only what a valid trigger says: this stack's service and a reason of an alert name and a time.
    for sent in forge.requests[sent_before:]:
        client = sent["payload"]["client_payload"]
        assert client["stack"] == "staging" and client["service"] == "genesis"
        assert re.fullmatch(r"CanaryErrorRateHigh firing since \d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)", client["reason"])
    assert "Traceback" not in relay.log_text()
