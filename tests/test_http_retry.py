"""Calls to the monitoring APIs retry transient failures, and only those, within a deadline.

Each case runs against a local server on 127.0.0.1 that fails a set number of
times in a set way (tests/servers.py FlakyServer), then answers.
"""

from __future__ import annotations

import base64

import pytest

from figures import count
from rollout.ops.http import Retry, fetch, public_url, transient
from servers import FlakyServer, RawServer, closed_port, free_port

#: Fast backoff for the tests: the schedule itself is tested with a fake clock below.
QUICK = Retry(deadline_s=20, timeout_s=2, base_s=0.01, cap_s=0.05, max_tries=10)


def ok(*_):
    return 200, b'{"status": "success"}'


@pytest.mark.parametrize(
    "faults, status, tries",
    [
        pytest.param([503, 503], 200, 3, id="two 503s then an answer take three tries"),
        pytest.param([500, 502, 504], 200, 4, id="any 5xx is retried"),
        pytest.param(["reset", "reset"], 200, 3, id="a connection closed without an answer is retried"),
        pytest.param([("slow", 3)], 200, 2, id="an answer slower than the timeout is retried"),
        pytest.param([503, "reset", ("slow", 3), 500], 200, 5, id="a mix of transient faults is retried through"),
        pytest.param([400], 400, 1, id="a 400 bad query is not retried"),
        pytest.param([422], 422, 1, id="a 422 execution error is not retried"),
        pytest.param([404, 503], 404, 1, id="a 404 is the answer"),
        pytest.param([], 200, 1, id="a healthy server answers at the first try"),
    ],
)
def test_transient_failures_are_retried_and_the_tries_are_counted(faults, status, tries):
    with FlakyServer(faults, ok) as api:
        answer = fetch(f"{api.url}/api/v1/query", data=b"query=up", retry=QUICK)
    assert (answer.status, answer.tries, api.requests) == (status, tries, tries)
    count("faults: HTTP calls", "faults injected", len(faults))
    count("faults: HTTP calls", "calls answered after their faults" if answer.ok else "4xx answered at once, not retried", 1)


def test_faults_past_the_tries_allowed_give_the_last_failure():
    with FlakyServer([503] * 5, ok) as api:
        answer = fetch(api.url, retry=Retry(deadline_s=20, timeout_s=2, base_s=0.01, cap_s=0.01, max_tries=3))
    assert (answer.status, answer.tries, api.requests) == (503, 3, 3)
    assert not answer.ok and answer.tries_text().startswith("3 tries over")
    count("faults: HTTP calls", "faults injected", 3)


def test_a_server_that_comes_up_during_the_backoff_is_reached():
    """Connection refused, twice; the server starts while the caller sleeps."""
    started = []
    port = free_port()

    def sleep_then_start(seconds):
        if len(started) == 1:
            started.append(_serve_on(port))
        else:
            started.append(None)

    try:
        answer = fetch(f"http://127.0.0.1:{port}/-/ready", retry=QUICK, sleep=sleep_then_start)
    finally:
        for server in started:
            if server is not None:
                server.shutdown()
                server.server_close()
    assert answer.ok and answer.tries == 3
    count("faults: HTTP calls", "faults injected", 2)
    count("faults: HTTP calls", "calls answered after their faults", 1)


def _serve_on(port: int):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_nothing_listening_is_retried_until_the_deadline_and_says_why():
    answer = fetch(f"http://127.0.0.1:{closed_port()}/", retry=Retry(deadline_s=0.5, timeout_s=0.2, base_s=0.05, cap_s=0.1))
    assert answer.status is None and answer.tries > 1
    assert "refused" in answer.error.lower()
    assert answer.elapsed_s < 5  # bounded by the deadline, not by max_tries' worth of timeouts


class FakeClock:
    """Time that moves only when the caller sleeps or a try takes its timeout."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_backoff_doubles_up_to_its_cap_and_stops_at_the_deadline():
    time = FakeClock()
    bounds: list[float] = []

    def widest(low, high):
        bounds.append(high)
        return high

    retry = Retry(deadline_s=40, timeout_s=1, base_s=0.5, cap_s=8, max_tries=100)
    answer = fetch(f"http://127.0.0.1:{closed_port()}/", retry=retry, sleep=time.sleep, clock=time.clock, jitter=widest)
    assert time.sleeps[:6] == [0.5, 1, 2, 4, 8, 8]
    assert sum(time.sleeps) < retry.deadline_s
    # The sleep that would have crossed the deadline is not taken; the call ends instead.
    assert sum(time.sleeps) + bounds[-1] >= retry.deadline_s
    assert answer.tries == len(time.sleeps) + 1


def test_the_jitter_is_drawn_between_zero_and_the_bound():
    time = FakeClock()
    draws = []

    def record(low, high):
        import random

        value = random.uniform(low, high)
        draws.append((low, value, high))
        return value

    fetch(f"http://127.0.0.1:{closed_port()}/", retry=Retry(deadline_s=30, timeout_s=1, max_tries=6),
          sleep=time.sleep, clock=time.clock, jitter=record)
    assert len(draws) == 5
    assert all(low == 0 and low <= value <= high for low, value, high in draws)
    assert len({value for _, value, _ in draws}) == 5, "every pause is drawn anew"


@pytest.mark.parametrize(
    "url",
    ["not a url", "ftp://127.0.0.1/", "", "http//127.0.0.1"],
    ids=["words", "another scheme", "nothing", "a missing colon"],
)
def test_what_is_not_an_http_url_is_refused_without_a_try(url):
    answer = fetch(url, retry=QUICK)
    assert answer.status is None and answer.tries == 0 and "URL" in answer.error


@pytest.mark.parametrize(
    "status, retried",
    [(None, True), (500, True), (503, True), (599, True), (200, False), (400, False), (404, False), (429, False)],
    ids=lambda v: str(v),
)
def test_which_answers_are_transient(status, retried):
    assert transient(status) is retried


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://ci:s3cret@prometheus.example.com:9090/prom?token=x#y", "https://prometheus.example.com:9090/prom"),
        ("http://127.0.0.1:9093", "http://127.0.0.1:9093"),
        ("http://host:notaport/", "http://host/"),
        ("http://admin:pw@[::1]:9090/x", "http://[::1]:9090/x"),
    ],
    ids=["credentials, query and fragment are dropped", "a plain URL is kept", "a broken port is dropped",
         "an IPv6 address keeps its brackets"],
)
def test_a_url_is_printed_without_what_it_must_not_show(url, shown):
    assert public_url(url) == shown


def test_credentials_in_the_url_go_in_a_basic_auth_header_and_in_no_message():
    paths = []

    def record(method, path, body):
        paths.append(path)
        return 200, b"{}"

    with FlakyServer([503], record) as api:
        with_credentials = api.url.replace("http://", "http://ci%40example:s3cr%2Ft@") + "/api/v1/query?x=1"
        answer = fetch(with_credentials, retry=QUICK)
    assert answer.ok and answer.tries == 2 and paths == ["/api/v1/query?x=1"]
    assert api.authorizations == ["Basic " + base64.b64encode(b"ci@example:s3cr/t").decode()] * 2
    assert "s3cr" not in answer.url and "example" not in answer.url


def test_a_url_without_credentials_sends_no_authorization():
    with FlakyServer([], ok) as api:
        fetch(api.url, retry=QUICK)
    assert api.authorizations == [None]


def _garbled_then_silent():
    """A RawServer's answer: a malformed status line to the first request, then nothing until the test ends."""
    seen = []

    def respond(request, send, stopped):
        seen.append(request)
        if len(seen) == 1:
            send(b"HTTP/1.1 OK\r\n\r\n")
        else:
            stopped.wait(5)

    return respond


def test_a_try_the_deadline_cuts_short_does_not_hide_why_the_one_before_failed():
    # The second try has 0.3 s left of its 1 s timeout and gets no answer in it: that
    # says nothing about the server, the garbled first answer does.
    with RawServer(_garbled_then_silent()) as api:
        answer = fetch(api.url, retry=Retry(deadline_s=0.5, timeout_s=1, base_s=0.2, cap_s=0.2), jitter=lambda low, high: high)
    assert answer.tries == 2 and answer.status is None
    assert "malformed status line" in answer.error and not answer.timed_out


def test_a_try_that_times_out_within_its_own_timeout_is_what_is_reported():
    with RawServer(_garbled_then_silent()) as api:
        answer = fetch(api.url, retry=Retry(deadline_s=5, timeout_s=0.3, base_s=0.05, cap_s=0.05, max_tries=2))
    assert answer.tries == 2 and answer.status is None
    assert answer.error == "no answer within 0.3s" and answer.timed_out
