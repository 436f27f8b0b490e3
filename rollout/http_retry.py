"""HTTP to the monitoring stack's APIs (Prometheus, Alertmanager, Grafana), with retries.

Every call of ``rollout evidence`` and ``rollout verify`` goes through
:func:`fetch`. Right after a deploy, or while a pod restarts, these APIs refuse
connections, time out or answer 503 for a while; one failed call should not
fail a verification or refuse an advance. So a transient failure is retried:

- no connection (refused, reset, name not resolved) or no answer within the
  per-try timeout;
- an HTTP 5xx: 503 from a Prometheus that is not ready yet or whose query timed
  out, 502/504 from a proxy in front of it, 500.

Anything else is the answer: a 2xx, and a 4xx, which says the request itself is
wrong (Prometheus answers a query it cannot parse with 400 ``bad_data`` and one
it cannot execute with 422): asking again would get the same answer.

Backoff is exponential with full jitter, as in "Exponential Backoff And Jitter"
(AWS Architecture Blog, 2015): before try ``n + 1`` the call sleeps a uniform
random time in ``[0, min(cap, base * 2**(n - 1))]``, so many clients retrying at
once spread out instead of arriving together. All tries share one total
deadline: no try starts after it, a try's timeout is cut to what is left of it,
and no sleep runs past it. The answer says how many tries it took.
"""

from __future__ import annotations

import base64
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable, Mapping


@dataclass(frozen=True)
class Retry:
    """How hard a call tries. The defaults suit a CI job: half a minute per call."""

    #: Seconds from the first try after which no new try starts.
    deadline_s: float = 30.0
    #: Seconds one try waits for an answer (cut to what is left of the deadline).
    timeout_s: float = 10.0
    #: The first backoff's upper bound; each next one doubles it.
    base_s: float = 0.5
    #: The largest backoff.
    cap_s: float = 8.0
    #: Tries at most, deadline or not.
    max_tries: int = 10

    def backoff_bound(self, tries: int) -> float:
        """The upper bound of the sleep after ``tries`` failed tries."""
        return min(self.cap_s, self.base_s * 2 ** (tries - 1))


#: One try, then the answer: for calls that must not wait (tests, probes of probes).
NO_RETRY = Retry(max_tries=1)


@dataclass(frozen=True)
class Answer:
    """The outcome of a call: the last try's HTTP answer, or why there was none."""

    #: The URL as it may be shown (no credentials, see public_url).
    url: str
    #: The HTTP status of the last try; None when it got no answer.
    status: int | None
    body: bytes
    tries: int
    elapsed_s: float
    #: Why the last try got no answer (None when it got one).
    error: str | None = None
    #: True when the last try timed out (no answer within its timeout).
    timed_out: bool = False

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def tries_text(self) -> str:
        """``"1 try"``, ``"3 tries over 2.1s"``: for messages."""
        if self.tries == 0:
            return "not tried"
        if self.tries == 1:
            return "1 try"
        return f"{self.tries} tries over {self.elapsed_s:.1f}s"


def transient(status: int | None) -> bool:
    """Whether an answer with this status (None: no answer) is worth another try."""
    return status is None or status >= 500


def _try(request: urllib.request.Request, timeout: float) -> tuple[int | None, bytes, str | None, bool]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), None, False
    except urllib.error.HTTPError as err:
        try:
            body = err.read()
        except (OSError, socket.timeout):
            body = b""
        return err.code, body, None, False
    except (socket.timeout, TimeoutError) as err:
        return None, b"", f"no answer within {timeout:.3g}s ({err or 'timed out'})", True
    except urllib.error.URLError as err:
        reason = err.reason
        timed_out = isinstance(reason, (socket.timeout, TimeoutError))
        why = f"no answer within {timeout:.3g}s" if timed_out else str(reason)
        return None, b"", why, timed_out
    except (ConnectionError, OSError, ValueError) as err:
        # ValueError: http.client's answer to a garbled status line or header.
        return None, b"", f"{type(err).__name__}: {err}", False


def _credentials_to_header(url: str, headers: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
    """``https://user:password@host/`` as the URL without them and a Basic Authorization header.

    urllib would otherwise take ``user:password@host`` for the host name. The
    credentials then travel only in the header, never in a message: every
    message shows :func:`public_url`.
    """
    headers = dict(headers or {})
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, headers
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    headers.setdefault("Authorization", f"Basic {token}")
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), headers


def fetch(
    url: str,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    retry: Retry = Retry(),
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    jitter: Callable[[float, float], float] = random.uniform,
) -> Answer:
    """GET ``url`` (POST when ``data`` is given), retrying transient failures.

    Credentials in the URL (``https://user:password@host``) are sent as HTTP
    Basic authentication.

    Never raises for a network problem: the :class:`Answer` says what happened.
    ``sleep``, ``clock`` and ``jitter`` are the waits, the time and the random
    draw, replaceable to test the schedule.
    """
    start = clock()
    try:
        urllib.request.Request(url)
    except ValueError:
        return Answer(public_url(url), None, b"", 0, 0.0, "not an http(s) URL")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return Answer(public_url(url), None, b"", 0, 0.0, "not an http(s) URL")
    url, headers = _credentials_to_header(url, headers)
    deadline = start + retry.deadline_s
    tries = 0
    while True:
        tries += 1
        left = deadline - clock()
        timeout = max(0.001, min(retry.timeout_s, left))
        request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
        status, body, error, timed_out = _try(request, timeout)
        if not transient(status) or tries >= retry.max_tries:
            break
        pause = jitter(0.0, retry.backoff_bound(tries))
        if clock() + pause >= deadline:
            break
        sleep(pause)
    return Answer(public_url(url), status, body, tries, clock() - start, error, timed_out)


def public_url(url: str) -> str:
    """The URL without credentials, query or fragment: what may be printed or recorded."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        host = f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
