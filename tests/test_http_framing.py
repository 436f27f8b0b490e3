"""What a monitoring API's server does on the wire never breaks a call or outlives its deadline.

Each case runs ``rollout.ops.http.fetch`` against a raw TCP server on
127.0.0.1 (tests/servers.py RawServer) that frames its answer wrongly, trickles
it, sends too much, or redirects elsewhere. The call ends with an
:class:`~rollout.ops.http.Answer` that says what happened, never an exception.
"""

from __future__ import annotations

import base64
import json
import threading

import pytest

from figures import count
from rollout.ops.http import Answer, Retry, fetch, json_body
from servers import FlakyServer, RawServer, raw_answer

ONE_TRY = Retry(deadline_s=3, timeout_s=1, max_tries=1)
JSON = [("Content-Type", "application/json")]


def _answer(respond, retry: Retry = ONE_TRY, url_tail: str = "/api/v1/query", **kwargs) -> tuple[Answer, RawServer]:
    with RawServer(respond) as api:
        answer = _ends(lambda: fetch(api.url + url_tail, retry=retry, **kwargs))
    return answer, api


def _ends(call, within_s: float = 60) -> Answer:
    """The call's answer; fails if it is still running after ``within_s`` (it would run forever)."""
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(call()), daemon=True)
    thread.start()
    thread.join(within_s)
    assert outcome, f"the call was still running after {within_s}s"
    return outcome[0]


def _sends(data: bytes):
    return lambda request, send, stopped: send(data)


@pytest.mark.parametrize(
    "data, why",
    [
        pytest.param(raw_answer(headers=[("Content-Length", "100")] + JSON, body=b'{"status": "su'),
                     "closed early: 14 of the 100 announced", id="a Content-Length the body does not reach"),
        pytest.param(raw_answer(headers=[("Content-Length", "2")], body=b""), "closed early: 0 of the 2",
                     id="an announced body that never comes"),
        pytest.param(b"HTTP/1.1 OK\r\n\r\n", "malformed status line", id="a status line without a code"),
        pytest.param(b"HTTP/1.1 2000 OK\r\n\r\n", "malformed status line", id="a status code of four digits"),
        pytest.param(b"garbage\r\n\r\n", "malformed status line", id="no status line at all"),
        pytest.param(b"ICY 200 OK\r\n\r\n", "malformed status line", id="another protocol"),
        pytest.param(raw_answer(headers=[(f"X-{i}", "y") for i in range(150)]), "too many headers",
                     id="more headers than http.client reads"),
        pytest.param(raw_answer(headers=[("X-Long", "y" * 70000)]), "line too long", id="a header line too long"),
        pytest.param(b"", "closed without an answer", id="a connection closed at once"),
        pytest.param(raw_answer(headers=[("Transfer-Encoding", "chunked")], body=b"zz\r\nab\r\n"), "",
                     id="a chunk size that is not hex"),
        pytest.param(raw_answer(headers=[("Content-Length", "5"), ("Content-Length", "9")], body=b"abc"), "",
                     id="two Content-Lengths that differ"),
    ],
)
def test_a_garbled_answer_is_a_fault_that_says_what_was_wrong(data, why):
    answer, api = _answer(_sends(data))
    assert answer.status is None and answer.body == b"" and not answer.timed_out
    assert why in answer.error and "\n" not in answer.error
    count("faults: HTTP framing", "garbled answers recorded as faults", 1)


def test_a_garbled_answer_is_retried_like_a_lost_connection():
    answer, api = _answer(_sends(raw_answer(headers=[("Content-Length", "10")], body=b"abc")),
                          retry=Retry(deadline_s=5, timeout_s=1, base_s=0.01, cap_s=0.02, max_tries=3))
    assert (answer.status, answer.tries, len(api.requests)) == (None, 3, 3)


def _trickle(head: bytes, byte: bytes = b" "):
    def respond(request, send, stopped):
        send(head)
        while not stopped.wait(0.2):
            send(byte)

    return respond


@pytest.mark.parametrize(
    "respond",
    [
        pytest.param(_trickle(raw_answer(headers=[("Content-Length", "1000000")])), id="a body a byte at a time"),
        pytest.param(_trickle(b"HTTP/1.1 200 OK\r\n", b"X"), id="a header line a byte at a time"),
        pytest.param(_trickle(b"HTTP/1.1 200 OK\r\n", b"\r"), id="the headers' end never sent"),
        pytest.param(_trickle(b"", b"H"), id="a status line a byte at a time"),
        pytest.param(_trickle(raw_answer(headers=[("Transfer-Encoding", "chunked")]), b"1\r\n \r\n"),
                     id="one-byte chunks"),
    ],
)
def test_a_trickling_server_cannot_keep_a_call_past_its_deadline(respond):
    """Every read gets its byte within the timeout; only the deadline ends the call."""
    retry = Retry(deadline_s=1.5, timeout_s=1, base_s=0.01, cap_s=0.02)
    answer, _ = _answer(respond, retry=retry)
    assert answer.status is None and answer.timed_out
    assert "deadline" in answer.error
    count("faults: HTTP framing", "trickling answers ended by the deadline", 1)


def test_a_body_over_the_cap_is_a_fault_and_not_read_whole():
    sent = []

    def endless(request, send, stopped):
        send(raw_answer(headers=[("Transfer-Encoding", "chunked")]))
        chunk = b"x" * 65536
        while not stopped.is_set() and len(sent) < 2000:  # 128 MiB at most
            send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent.append(len(chunk))

    answer, _ = _answer(endless, retry=Retry(deadline_s=20, timeout_s=5, max_tries=1, max_body_bytes=1024 * 1024))
    assert answer.status is None and "larger than the 1048576 bytes allowed" in answer.error
    assert len(sent) < 2000, "the client read on past the cap"


def test_an_announced_body_over_the_cap_is_refused_before_it_is_read():
    answer, _ = _answer(_sends(raw_answer(headers=[("Content-Length", str(10**12))], body=b"{}")),
                        retry=Retry(max_tries=1, max_body_bytes=1000))
    assert answer.status is None and "announces 1000000000000 bytes" in answer.error


def test_a_body_at_the_cap_is_read():
    body = b"[" + b"1," * 498 + b"1]"
    answer, _ = _answer(_sends(raw_answer(headers=[("Content-Length", str(len(body)))], body=body)),
                        retry=Retry(max_tries=1, max_body_bytes=len(body)))
    assert answer.ok and answer.body == body


def test_a_compressed_body_is_not_asked_for():
    answer, api = _answer(_sends(raw_answer(headers=[("Content-Length", "2")], body=b"{}")))
    assert b"accept-encoding: identity" in api.requests[0].lower()


def _redirecting(location: str, status: str = "302 Found"):
    return _sends(raw_answer(status, headers=[("Location", location), ("Content-Length", "0")]))


def _authorization(request: bytes) -> str | None:
    for line in request.split(b"\r\n"):
        if line.lower().startswith(b"authorization:"):
            return line.split(b":", 1)[1].strip().decode()
    return None


BASIC = "Basic " + base64.b64encode(b"ci:s3cret").decode()


@pytest.mark.parametrize("status", ["301 Moved Permanently", "302 Found", "303 See Other", "307 Temporary Redirect",
                                    "308 Permanent Redirect"])
def test_credentials_never_follow_a_redirect_to_another_origin(status):
    with FlakyServer([], lambda *_: (200, b'{"status": "success"}')) as elsewhere:
        with RawServer(_redirecting(elsewhere.url + "/stolen", status)) as origin:
            url = origin.url.replace("http://", "http://ci:s3cret@") + "/api/v1/query"
            answer = _ends(lambda: fetch(url, data=b"query=up", retry=ONE_TRY))
    assert answer.ok and answer.redirected_to == elsewhere.url + "/stolen"
    assert _authorization(origin.requests[0]) == BASIC
    assert elsewhere.authorizations == [None], "the credentials went to another origin"
    count("faults: HTTP framing", "redirects to another origin without the credentials", 1)


@pytest.mark.parametrize(
    "where",
    [lambda url: url.replace("127.0.0.1", "localhost"), lambda url: url.replace("http://", "https://"),
     lambda url: url.rsplit(":", 1)[0] + ":1"],
    ids=["another host name for the same address", "another scheme", "another port"],
)
def test_another_host_name_scheme_or_port_is_another_origin(where):
    with RawServer(lambda request, send, stopped: None) as origin:
        target = where(origin.url) + "/x"
        with RawServer(_redirecting(target)) as first:
            url = first.url.replace("http://", "http://ci:s3cret@") + "/"
            _ends(lambda: fetch(url, retry=ONE_TRY))
    assert all(_authorization(r) is None for r in origin.requests)


def test_a_redirect_within_the_origin_keeps_the_credentials():
    def respond(request, send, stopped):
        if request.startswith(b"GET /first"):
            send(raw_answer("302 Found", headers=[("Location", "/second"), ("Content-Length", "0")]))
        else:
            send(raw_answer(headers=[("Content-Length", "2")], body=b"{}"))

    with RawServer(respond) as api:
        answer = _ends(lambda: fetch(api.url.replace("http://", "http://ci:s3cret@") + "/first", retry=ONE_TRY))
    assert answer.ok and [_authorization(r) for r in api.requests] == [BASIC, BASIC]


def test_a_redirect_loop_is_a_fault():
    answer, api = _answer(_redirecting("/api/v1/query"))
    assert answer.status is None and "more than 5 redirects" in answer.error and len(api.requests) == 6


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/", "gopher://x/"])
def test_a_redirect_to_another_scheme_is_a_fault(location):
    answer, api = _answer(_redirecting(location))
    assert answer.status is None and "not an http(s) URL" in answer.error and len(api.requests) == 1


@pytest.mark.parametrize(
    "body, why",
    [(b"[" * 100000 + b"]" * 100000, "nested too deeply"), (b"{", "not JSON"), (b"\xff\xfe", "not JSON"),
     (b"", "not JSON")],
    ids=["nested a hundred thousand deep", "cut short", "not UTF-8", "empty"],
)
def test_a_body_that_cannot_be_read_as_json_says_so(body, why):
    document, error = json_body(Answer("http://x", 200, body, 1, 0.0))
    assert document is None and why in error


def test_a_deep_document_within_the_limit_is_read():
    assert json_body(Answer("http://x", 200, json.dumps([[[1]]]).encode(), 1, 0.0)) == ([[[1]]], None)
