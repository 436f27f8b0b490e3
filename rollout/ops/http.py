"""HTTP to the monitoring stack's APIs (Prometheus, Alertmanager, Grafana), with retries.

Every call of ``rollout evidence`` and ``rollout verify`` goes through
:func:`fetch`, which speaks HTTP with urllib3 (connection pooling, HTTP framing,
timeouts per socket operation). What this module adds is what those calls need
on top of it:

- **Retries.** Right after a deploy, or while a pod restarts, these APIs refuse
  connections, time out or answer 503 for a while; one failed call should not
  fail a verification or refuse an advance. A transient failure is retried: no
  connection (refused, reset, name not resolved), no complete answer (no answer
  within the per-try timeout, a connection closed before the announced
  Content-Length, a garbled status line or headers), and an HTTP 5xx. Anything
  else is the answer: a 2xx, and a 4xx, which says the request itself is wrong
  (Prometheus answers a query it cannot parse with 400 ``bad_data`` and one it
  cannot execute with 422): asking again would get the same answer.
- **Backoff** is exponential with full jitter: before try ``n + 1`` the call
  sleeps a uniform random time in ``[0, min(cap, base * 2**(n - 1))]``, so many
  clients retrying at once spread out instead of arriving together.
- **One deadline for the whole call.** No try starts after it, a try's timeout
  is cut to what is left of it, no sleep runs past it, and a watchdog closes the
  call's connections when it passes: a server that trickles its answer one byte
  at a time (each read within the timeout) cannot keep a call alive past it.
- **A body-size cap.** The body is read in chunks and the call gives up once it
  passes :attr:`Retry.max_body_bytes` (or the server announces more): an answer
  is never held in memory whole beyond the cap. Bodies are asked for and read
  uncompressed (``Accept-Encoding: identity``), so the cap is on what is held.
- **Redirects** are followed (at most :attr:`Retry.max_redirects`), and the
  credentials of the URL (``https://user:password@host/``, sent as HTTP Basic
  authentication) go only to the origin they were given for: a redirect to
  another scheme, host or port drops the ``Authorization`` header, as urllib3
  drops it for its own redirects (``Retry.DEFAULT_REMOVE_HEADERS_ON_REDIRECT``).

:func:`fetch` never raises for what a server does: the :class:`Answer` says
what happened, and :func:`json_body` reads its JSON without letting an odd
document (too deeply nested, not JSON) raise.
"""

from __future__ import annotations

import base64
import contextvars
import http.client
import logging
import random
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProtocolError, ReadTimeoutError
from urllib3.util import Timeout

from rollout.model import jsontext

# urllib3 logs what it retries and garbled headers it tolerated; the answer
# (or the fault recorded) says what matters, once, on the command's terms.
logging.getLogger("urllib3").addHandler(logging.NullHandler())
logging.getLogger("urllib3").propagate = False

#: The headers that never go to another origin: urllib3's own list for its redirects.
_CREDENTIAL_HEADERS = frozenset(h.lower() for h in urllib3.util.Retry.DEFAULT_REMOVE_HEADERS_ON_REDIRECT)
#: The statuses that are a redirect with a Location to follow.
REDIRECTS = (301, 302, 303, 307, 308)
#: The deepest answer read: Prometheus' and Alertmanager's answers nest a few levels.
JSON_ANSWER_DEPTH = 256


@dataclass(frozen=True)
class Retry:
    """How hard a call tries. The defaults suit a CI job: half a minute per call."""

    #: Seconds from the first try after which the call ends, whatever it is doing.
    deadline_s: float = 30.0
    #: Seconds one try waits for a connection or for each read (cut to what is left of the deadline).
    timeout_s: float = 10.0
    #: The first backoff's upper bound; each next one doubles it.
    base_s: float = 0.5
    #: The largest backoff.
    cap_s: float = 8.0
    #: Tries at most, deadline or not.
    max_tries: int = 10
    #: The largest body read; a larger one is a fault, never read whole.
    max_body_bytes: int = jsontext.MAX_DOCUMENT_BYTES
    #: Redirects followed within one try.
    max_redirects: int = 5

    def backoff_bound(self, tries: int) -> float:
        """The upper bound of the sleep after ``tries`` failed tries."""
        return min(self.cap_s, self.base_s * 2 ** (tries - 1))

    def cut_short(self, timeout: float) -> bool:
        """Whether a try given ``timeout`` had less than its own timeout: the deadline clipped it,
        so its timing out says nothing about the server (the try before it does)."""
        return timeout < self.timeout_s


#: One try, then the answer: for calls that must not wait (tests, probes of probes).
NO_RETRY = Retry(max_tries=1)


@dataclass(frozen=True)
class Answer:
    """The outcome of a call: the last try's HTTP answer, or why there was none.

    A last try that the deadline cut short (its timeout clipped to what was left,
    or the watchdog) and that timed out is no news about the server: the answer is
    then the try before it, so a garbled answer or a 503 is not reported as a timeout.
    """

    #: The URL as it may be shown (no credentials, see public_url).
    url: str
    #: The HTTP status of the last try; None when it got no (complete) answer.
    status: int | None
    body: bytes
    tries: int
    elapsed_s: float
    #: Why the last try got no answer (None when it got one).
    error: str | None = None
    #: True when the last try timed out (no answer within its timeout or the deadline).
    timed_out: bool = False
    #: Where the answer came from after redirects (public_url), None when not redirected.
    redirected_to: str | None = None

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


# --- the deadline's watchdog ----------------------------------------------------------


class _Call:
    """The sockets one call opened, closed by a timer when its deadline passes."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.expired = False
        self._lock = threading.Lock()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self.sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self.sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("rollout_http_call", default=None)


def _watched(connection_class: type) -> type:
    """``connection_class`` whose sockets the current call's watchdog may close."""

    class Watched(connection_class):  # type: ignore[misc, valid-type]
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            call = _CALL.get()
            if call is not None:
                call.watch(sock)
            return sock

        def connect(self) -> None:
            super().connect()
            call = _CALL.get()
            if call is not None:
                call.watch(self.sock)  # the TLS socket, for https

    Watched.__name__ = f"Watched{connection_class.__name__}"
    return Watched


class _Pool(HTTPConnectionPool):
    ConnectionCls = _watched(HTTPConnection)


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _watched(HTTPSConnection)


def _pool_manager() -> urllib3.PoolManager:
    manager = urllib3.PoolManager(num_pools=4, maxsize=1, retries=False)
    manager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
    return manager


# --- one try ------------------------------------------------------------------------


class _Fault(Exception):
    """No complete answer; the message says why, ``timed_out`` whether it was time."""

    def __init__(self, message: str, timed_out: bool = False, final: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out
        #: Another try would get the same (a body over the cap, a redirect loop).
        self.final = final


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = urllib3.util.parse_url(url)
    scheme = (parsed.scheme or "").lower()
    return scheme, (parsed.host or "").lower(), parsed.port or {"http": 80, "https": 443}.get(scheme)


def _describe(err: BaseException) -> str:
    """What went wrong in one line, from urllib3's or http.client's exception."""
    causes: list[BaseException] = []
    seen: BaseException | None = err
    while seen is not None and len(causes) < 10:
        causes.append(seen)
        nested = [a for a in getattr(seen, "args", ()) if isinstance(a, BaseException)]
        seen = nested[0] if nested else (seen.__cause__ or seen.__context__)
    for cause in causes:
        if isinstance(cause, http.client.IncompleteRead):
            got = cause.partial if isinstance(cause.partial, int) else len(cause.partial)
            more = cause.expected if isinstance(cause.expected, int) else None
            announced = f" of the {got + more} announced" if more is not None else ""
            return f"the connection closed early: {got}{announced} bytes of the body arrived"
        if isinstance(cause, http.client.BadStatusLine) and not isinstance(cause, http.client.RemoteDisconnected):
            return f"a malformed status line ({str(cause)[:80]!r})"
        if isinstance(cause, http.client.RemoteDisconnected):
            return "the connection closed without an answer"
        if isinstance(cause, http.client.LineTooLong):
            return f"a line too long in the answer ({cause})"
        if isinstance(cause, http.client.HTTPException) and "headers" in str(cause):
            return f"too many headers in the answer ({cause})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
    if isinstance(err, NewConnectionError):
        return f"no connection: {str(err).split(': ', 1)[-1]}"
    return f"{type(err).__name__}: {err}"


def _read_body(response: urllib3.BaseHTTPResponse, cap: int, call: _Call) -> bytes:
    announced = response.headers.get("Content-Length")
    if announced and announced.strip().isdigit() and int(announced) > cap:
        raise _Fault(f"the answer announces {int(announced)} bytes, more than the {cap} allowed", final=True)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = response.read(64 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > cap:
            raise _Fault(f"the answer is larger than the {cap} bytes allowed", final=True)
        chunks.append(chunk)
    if call.expired:
        raise _Fault("the answer did not arrive whole before the deadline", timed_out=True)
    return b"".join(chunks)


def _try(
    manager: urllib3.PoolManager, call: _Call, url: str, data: bytes | None, headers: dict[str, str],
    origin: tuple[str, str, int | None], timeout: float, retry: Retry,
) -> tuple[int, bytes, str | None]:
    """One try, following redirects: (status, body, the URL redirected to or None)."""
    method = "POST" if data is not None else "GET"
    redirected: str | None = None
    for _ in range(retry.max_redirects + 1):
        try:
            response = manager.request(
                method, url, body=data, headers=headers, redirect=False, retries=False,
                preload_content=False, decode_content=False, timeout=Timeout(connect=timeout, read=timeout),
            )
        except NewConnectionError as err:  # a ConnectTimeoutError to urllib3, but refused or unresolved
            raise _Fault(_describe(err)) from None
        except (ConnectTimeoutError, ReadTimeoutError, TimeoutError, socket.timeout):
            raise _Fault(f"no answer within {timeout:.3g}s", timed_out=True) from None
        except (Urllib3Error, http.client.HTTPException, OSError, ValueError) as err:
            if call.expired:
                raise _Fault("no answer before the deadline", timed_out=True) from None
            raise _Fault(_describe(err)) from None
        try:
            location = response.headers.get("Location")
            if response.status in REDIRECTS and location:
                target = urllib.parse.urljoin(url, location)
                if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
                    raise _Fault(f"a redirect to something that is not an http(s) URL ({public_url(target)})", final=True)
                if _origin(target) != origin:
                    # Credentials stay with the origin they were given for.
                    headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
                if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                    method, data = "GET", None
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                url = redirected = target
                continue
            return response.status, _read_body(response, retry.max_body_bytes, call), (
                public_url(redirected) if redirected else None
            )
        except (ReadTimeoutError, TimeoutError, socket.timeout):
            raise _Fault(f"no answer within {timeout:.3g}s", timed_out=True) from None
        except (Urllib3Error, http.client.HTTPException, OSError, ValueError) as err:
            if call.expired:
                raise _Fault("the answer did not arrive whole before the deadline", timed_out=True) from None
            raise _Fault(_describe(err)) from None
        finally:
            response.close()
            response.release_conn()
    raise _Fault(f"more than {retry.max_redirects} redirects", final=True)


def _credentials_to_header(url: str, headers: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
    """``https://user:password@host/`` as the URL without them and a Basic Authorization header.

    The credentials then travel only in the header, never in a message: every
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


def _is_http_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


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
    Basic authentication, to that origin only.

    Never raises for a network problem: the :class:`Answer` says what happened.
    ``sleep``, ``clock`` and ``jitter`` are the waits, the time and the random
    draw, replaceable to test the schedule; the watchdog that ends a call at its
    deadline runs on real time.
    """
    start = clock()
    if not _is_http_url(url):
        return Answer(public_url(url), None, b"", 0, 0.0, "not an http(s) URL")
    url, headers = _credentials_to_header(url, headers)
    headers.setdefault("Accept-Encoding", "identity")
    origin = _origin(url)
    deadline = start + retry.deadline_s
    call = _Call()
    watchdog = threading.Timer(retry.deadline_s, call.expire)
    watchdog.daemon = True
    manager = _pool_manager()
    token = _CALL.set(call)
    watchdog.start()
    tries = 0
    outcome: tuple[int | None, bytes, str | None, str | None, bool] | None = None
    try:
        while True:
            tries += 1
            left = deadline - clock()
            timeout = max(0.001, min(retry.timeout_s, left))
            try:
                status, body, redirected = _try(manager, call, url, data, dict(headers), origin, timeout, retry)
                error, timed_out, final = None, False, False
            except _Fault as fault:
                status, body, redirected, error, timed_out = None, b"", None, str(fault), fault.timed_out
                final = fault.final
            if timed_out and outcome is not None and (retry.cut_short(timeout) or call.expired):
                # The deadline cut this try short: its timeout says nothing about the
                # server, the try before it does (a garbled answer, a 503, a refusal).
                status, body, redirected, error, timed_out = outcome
            outcome = (status, body, redirected, error, timed_out)
            if final or not transient(status) or tries >= retry.max_tries or call.expired:
                break
            pause = jitter(0.0, retry.backoff_bound(tries))
            if clock() + pause >= deadline:
                break
            sleep(pause)
    finally:
        watchdog.cancel()
        _CALL.reset(token)
        manager.clear()
    return Answer(public_url(url), status, body, tries, clock() - start, error, timed_out, redirected)


def json_body(answer: Answer) -> tuple[Any, str | None]:
    """The answer's body as JSON: (document, None), or (None, why it is not usable)."""
    try:
        return jsontext.loads(answer.body, max_depth=JSON_ANSWER_DEPTH), None
    except jsontext.JsonRefused as refused:
        if "nested more than" in str(refused):
            return None, "the answer is JSON nested too deeply to read"
        if "out of range" in str(refused):
            return None, f"the answer holds a value out of range ({refused})"
        return None, "the answer is not JSON"


def public_url(url: str) -> str:
    """The URL without credentials, query or fragment: what may be printed or recorded."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(not a URL)"
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
