"""The relay's HTTP server protecting itself before any request reaches the application.

aiohttp's server limits the size of a request (its line, each header, the
body: ``max_line_size``, ``max_field_size``, ``client_max_size``) and closes an
idle connection (``keepalive_timeout``), but it bounds neither how many
connections it holds nor how long a client may take to send a request head.
One process serving Alertmanager must not be starved by clients that open
connections and trickle a header line now and then: this module puts a guard
between the listening socket and aiohttp's protocol (a wrapper of each
connection's protocol, installed with ``loop.create_server``), the same place a
front proxy's connection limits sit:

- **a time limit for the request head**: a connection that has not sent a
  complete request line and headers within :attr:`Limits.head_timeout_s` of
  becoming idle (connected, or done with its last request) is closed;
- **connection limits, in all and per client address**: when a new connection
  would pass one, the oldest *idle* connection of that scope (no request being
  handled: a slow or silent client) is closed to make room; when none is idle,
  the new connection is closed at once. A client that sends its request at
  once, as Alertmanager does, is never the oldest idle one for long, so
  thousands of slow connections cannot keep it out;
- the limits sit well below the process' file-descriptor limit (raised to its
  hard limit at start), so accepting never fails with "Too many open files";
- **a log that rate-limits repeated lines** (:class:`RateLimitedLog`): the same
  message at most :attr:`Limits.log_burst` times per
  :attr:`Limits.log_window_s`, then one line saying how many were left out;
- **no credential in a log line** (:class:`Redact`): URL userinfo and
  ``Authorization`` values are masked in every record, and the HTTP client
  libraries' request lines (httpx, httpcore) are not logged at all.

The figures measured under attack are in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, replace
from typing import Any, Callable

log = logging.getLogger("rollout.ops.serving")


@dataclass(frozen=True)
class Limits:
    """What one relay process accepts from its clients."""

    #: Seconds a connection may take to send a complete request head once idle.
    head_timeout_s: float = 10.0
    #: Seconds the application may take to read a request's body.
    body_timeout_s: float = 10.0
    #: Connections held at once, in all.
    max_connections: int = 256
    #: Connections held at once from one client address.
    max_per_client: int = 64
    #: The longest request line and header field (aiohttp's own limits).
    max_line_bytes: int = 8190
    max_field_bytes: int = 8190
    #: Seconds an idle keep-alive connection is kept (aiohttp's keepalive_timeout).
    keepalive_s: float = 10.0
    #: Identical log lines kept per window; the rest are counted.
    log_burst: int = 5
    log_window_s: float = 10.0

    def handler_args(self) -> dict[str, Any]:
        """aiohttp's own per-connection limits (``web.AppRunner(..., **limits.handler_args())``)."""
        return {
            "max_line_size": self.max_line_bytes,
            "max_field_size": self.max_field_bytes,
            "keepalive_timeout": self.keepalive_s,
        }


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's protocol inside, the guard's bookkeeping around it."""

    def __init__(self, guard: "ConnectionGuard", inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self._timer: asyncio.TimerHandle | None = None
        self._heads = 0
        self._heads_at_timer = 0
        self._tail = b""
        self.closed = False

    # the guard's view -------------------------------------------------------------

    def busy(self) -> bool:
        """A request is being handled (its head arrived and its answer is not done)."""
        if getattr(self.inner, "_current_request", None) is not None:
            return True
        return bool(getattr(self.inner, "_messages", ()))

    def close(self, why: str) -> None:
        if self.closed or self.transport is None:
            return
        self.guard.closed_by_guard[why] += 1
        self.transport.abort()

    def _arm(self) -> None:
        self._heads_at_timer = self._heads
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.guard.limits.head_timeout_s, self._head_deadline)

    def _head_deadline(self) -> None:
        self._timer = None
        if self.closed:
            return
        if self.busy() or self._heads != self._heads_at_timer:
            self._arm()  # a request came (or is being handled): a new idle period starts
            return
        self.close("no request head in time")

    # asyncio's protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self.guard.admit(self):
            self.closed = True
            transport.abort()
            return
        self._arm()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        window = self._tail + data
        self._heads += window.count(b"\r\n\r\n")
        self._tail = window[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.closed and self.transport is not None and self not in self.guard.open:
            return  # refused at connection_made: aiohttp never saw it
        self.closed = True
        self.guard.release(self)
        self.inner.connection_lost(exc)


class ConnectionGuard:
    """The protocol factory for ``loop.create_server``: aiohttp's server, guarded."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limits: Limits) -> None:
        self.factory = factory
        self.limits = limits
        #: Open connections, oldest first.
        self.open: OrderedDict[_Guarded, None] = OrderedDict()
        self.per_client: dict[str, int] = defaultdict(int)
        #: Connections closed by the guard, by why (for the figures and /metrics).
        self.closed_by_guard: dict[str, int] = defaultdict(int)
        self.most_open = 0

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self, self.factory())

    def _evict_idle(self, client: str | None) -> bool:
        for conn in self.open:
            if (client is None or conn.client == client) and not conn.busy():
                conn.close("room for a new connection" if client is None else "room for the same client")
                self._forget(conn)
                return True
        return False

    def admit(self, conn: _Guarded) -> bool:
        if self.per_client[conn.client] >= self.limits.max_per_client and not self._evict_idle(conn.client):
            self.closed_by_guard["refused: the client holds its limit of busy connections"] += 1
            return False
        if len(self.open) >= self.limits.max_connections and not self._evict_idle(None):
            self.closed_by_guard["refused: every connection is busy"] += 1
            return False
        self.open[conn] = None
        self.per_client[conn.client] += 1
        self.most_open = max(self.most_open, len(self.open))
        return True

    def _forget(self, conn: _Guarded) -> None:
        if self.open.pop(conn, "absent") is None:
            self.per_client[conn.client] -= 1
            if self.per_client[conn.client] <= 0:
                del self.per_client[conn.client]

    def release(self, conn: _Guarded) -> None:
        self._forget(conn)


def raise_file_limit(wanted: int) -> int:
    """Raise the soft limit of open files towards ``wanted`` (at most the hard limit); the soft limit after."""
    try:
        import resource  # POSIX only; the relay runs on Linux
    except ImportError:
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def fitted(limits: Limits) -> Limits:
    """``limits`` with the connection limits under the file-descriptor limit (half of it: the forge,
    the Kubernetes API, the log and the listening socket need descriptors too)."""
    soft = raise_file_limit(4 * limits.max_connections)
    room = max(8, soft // 2)
    if limits.max_connections <= room:
        return limits
    return replace(limits, max_connections=room, max_per_client=min(limits.max_per_client, room))


async def start(runner: Any, host: str, port: int, limits: Limits) -> tuple[asyncio.AbstractServer, ConnectionGuard]:
    """Serve an aiohttp ``AppRunner`` (already set up) on ``host:port`` behind the guard."""
    guard = ConnectionGuard(runner.server, limits)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(guard, host, port, backlog=min(1024, 2 * limits.max_connections), reuse_address=True)
    return server, guard


# --- logging -------------------------------------------------------------------------------

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_AUTHORIZATION = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer|basic|token)?\s*[^\s'\",}]+")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with URL userinfo, Authorization values and the given secrets masked."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    text = _AUTHORIZATION.sub(lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class Redact(logging.Filter):
    """Masks credentials in every record it sees (its message with its arguments, and its traceback)."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if record.exc_info:
            cleaned += "\n" + redact(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
            record.exc_text = None
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


class RateLimitedLog(logging.Filter):
    """The same message (its logger and template) at most ``burst`` times per ``window_s``.

    The first record after a window that left some out says how many.
    """

    def __init__(self, burst: int = 5, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.window_s, self.clock = burst, window_s, clock
        self._seen: dict[tuple[str, str], list[float]] = {}
        #: [window start, lines shown in it, lines left out]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:200])
        now = self.clock()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.window_s:
            left_out = int(entry[2]) if entry else 0
            self._seen[key] = [now, 1, 0]
            if len(self._seen) > 1000:
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
            if left_out:
                record.msg = f"{record.getMessage()} ({left_out} similar line(s) left out in the last {self.window_s:g} s)"
                record.args = None
            return True
        if entry[1] < self.burst:
            entry[1] += 1
            return True
        entry[2] += 1
        return False


def configure_logging(secrets: tuple[str, ...], limits: Limits, stream: Any) -> None:
    """The relay's log: one line per record on ``stream``, credentials masked, repeats rate-limited,
    and no request lines of the HTTP client libraries (which could carry a URL's credentials)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Redact(secrets))
    handler.addFilter(RateLimitedLog(limits.log_burst, limits.log_window_s))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in ("httpx", "httpcore", "hpack", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
