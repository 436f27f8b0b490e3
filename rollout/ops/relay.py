"""``rollout relay``: Alertmanager's rollback webhook turned into the forge's ``repository_dispatch``.

One relay runs beside each stack's Alertmanager. It serves:

- ``POST /webhook``: Alertmanager's webhook (payload version 4). A request must
  carry ``Authorization: Bearer <ROLLOUT_RELAY_TOKEN>`` (Alertmanager's
  ``http_config.authorization``); anything else is answered 401 and sends
  nothing. Each *firing* alert labelled ``rollback="true"`` (a rollback trigger)
  becomes one ``repository_dispatch`` (``event_type: rollback``,
  ``client_payload: {stack, service, reason}``, and ``group`` for a member of a
  release group) to
  ``{forge-url}/repos/OWNER/NAME/dispatches`` with ``GITHUB_TOKEN``. An alert
  already dispatched (same fingerprint and start time: Alertmanager repeats a
  group at its repeat and group intervals), a resolved alert and any other
  alert send nothing.
- ``GET /healthz``: 200 while the relay serves.
- ``GET /metrics``: Prometheus' text format (dispatches, failures, the last
  success).

The body is read as a typed payload (:mod:`rollout.ops.webhook`): anything else,
and a trigger for a service the stack does not have, is answered 400 and logged.

**One deadline per notification** (``--deadline``, from the request's arrival)
bounds all of its handling. With the fast path on, the relay first sets the
service's HTTPRoute so the canary takes no traffic (:mod:`rollout.ops.fastpath`),
within at most :data:`FAST_PATH_SHARE` of the deadline, then dispatches. The
forge call is retried on no answer, 5xx and 429, with exponential backoff and
full jitter (the schedule of :class:`rollout.ops.http.Retry`); each try, the
reading of its answer (up to :data:`rollout.model.jsontext.MAX_API_ANSWER_BYTES`)
and every sleep end by the deadline. A try whose request was sent but got no
answer is not sent again within the notification (the forge may have acted on
it). When no try succeeded, the webhook is answered 502, so Alertmanager sends
the notification again, and the alert is not marked as dispatched. A repeat of
an alert whose dispatch is under way waits for its outcome, and is answered 503
when the outcome is not known by its own deadline: never "repeat" before the
forge accepted. Tokens and URL credentials appear in no log line and no answer.

The server is aiohttp's behind :mod:`rollout.ops.serving`'s guard (a time limit
for request heads, connection limits in all and per client, a rate-limited log);
the forge and the Kubernetes API are called with httpx; the metrics are
prometheus_client's.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import random
import time
import urllib.parse
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Iterable

import httpx
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from rollout.model import conventions as c
from rollout.model.jsontext import MAX_API_ANSWER_BYTES
from rollout.ops import serving
from rollout.ops.http import Retry, public_url
from rollout.ops.webhook import BadPayload, Trigger, parse, triggers, unnamed

__all__ = ["BadPayload", "Forge", "Metrics", "Relay", "Trigger", "application", "serve", "triggers"]

log = logging.getLogger("rollout.ops.relay")

WEBHOOK_PATH = c.RELAY_WEBHOOK_PATH
EVENT_TYPE = "rollback"
#: How many dispatched alerts the relay remembers (oldest forgotten first).
REMEMBERED = 10_000
#: The share of a notification's deadline the fast path may take before the dispatch goes out.
FAST_PATH_SHARE = 1 / 3


class Metrics:
    """The relay's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.dispatches = Counter(
            "rollout_relay_dispatches", "repository_dispatch events the forge accepted", ["service"], registry=self.registry
        )
        self.dispatch_failures = Counter(
            "rollout_relay_dispatch_failures",
            "Rollback triggers whose dispatch still failed when the deadline ran out",
            ["service"],
            registry=self.registry,
        )
        self.forge_errors = Counter(
            "rollout_relay_forge_errors", "Forge calls that failed (each try, retried or not)", registry=self.registry
        )
        self.last_success = Gauge(
            "rollout_relay_last_success_timestamp_seconds",
            "When the forge last accepted a dispatch (Unix time; 0 before the first)",
            registry=self.registry,
        )
        self.notifications = Counter(
            "rollout_relay_notifications", "Webhook notifications accepted, by the group's status", ["status"], registry=self.registry
        )
        self.rejected = Counter(
            "rollout_relay_rejected_requests", "Webhook requests refused", ["reason"], registry=self.registry
        )
        self.skipped = Counter(
            "rollout_relay_repeats", "Rollback triggers already dispatched, sent again by Alertmanager", registry=self.registry
        )
        self.route_updates = Counter(
            "rollout_relay_route_updates", "HTTPRoutes set to give the canary no traffic (fast path)", ["service"], registry=self.registry
        )
        self.route_failures = Counter(
            "rollout_relay_route_update_failures", "Fast-path route updates that failed", ["service"], registry=self.registry
        )
        self.connections = Gauge(
            "rollout_relay_connections", "Client connections open now (see rollout.ops.serving)", registry=self.registry
        )
        self.connections_most = Gauge(
            "rollout_relay_connections_most", "The most client connections open at once so far", registry=self.registry
        )
        self.guard_closed = Gauge(
            "rollout_relay_connections_closed_by_guard",
            "Connections the server's guard closed or refused so far, by why",
            ["why"],
            registry=self.registry,
        )

    def from_guard(self, guard: Any) -> None:
        """Copy the connection guard's figures into the gauges (before each scrape)."""
        if guard is None:
            return
        self.connections.set(len(guard.open))
        self.connections_most.set(guard.most_open)
        for why, n in list(guard.closed_by_guard.items()):
            self.guard_closed.labels(why).set(n)


def transient(status: int | None) -> bool:
    """No answer, a 5xx or 429 (rate limited): worth another try."""
    return status is None or status >= 500 or status == 429


def forge_endpoint(base_url: str) -> tuple[str, str | None]:
    """``--forge-url`` without its credentials, and the Basic Authorization they make (None without).

    The credentials then go only in the header of the forge's requests, never into
    a log line, an answer or the HTTP client (whose own request log shows the URL).
    """
    parts = urllib.parse.urlsplit(base_url)
    if parts.username is None and parts.password is None:
        return base_url, None
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    host = parts.netloc.rsplit("@", 1)[1]
    bare = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Forge:
    """The forge's REST API: ``POST /repos/OWNER/NAME/dispatches``.

    Credentials in the base URL (``https://user:password@host``) are sent as Basic
    authentication in place of the token's bearer header.
    """

    def __init__(
        self,
        base_url: str,
        repository: str,
        token: str,
        retry: Retry,
        metrics: Metrics,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
        max_answer_bytes: int = MAX_API_ANSWER_BYTES,
    ) -> None:
        bare, basic = forge_endpoint(base_url)
        self.url = f"{bare.rstrip('/')}/repos/{repository}/dispatches"
        #: The URL as it may be logged.
        self.public_url = public_url(self.url)
        self._headers = {
            "Authorization": basic or f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "Accept-Encoding": "identity",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "rollout-relay",
        }
        self.retry = retry
        self.metrics = metrics
        self.max_answer_bytes = max_answer_bytes
        self._client = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self._sleep = sleep
        self._jitter = jitter

    async def close(self) -> None:
        await self._client.aclose()

    async def _read_some(self, answer: httpx.Response, until: float) -> str:
        """Read the answer's body, at most the cap and until ``until`` (loop time); what was cut, if anything."""
        size = 0
        try:
            async with asyncio.timeout_at(until):
                async for chunk in answer.aiter_raw():
                    size += len(chunk)
                    if size > self.max_answer_bytes:
                        return f"; its answer passed {self.max_answer_bytes} bytes and was not read further"
        except TimeoutError:
            return f"; its answer was not read whole in time ({size} bytes)"
        except (httpx.HTTPError, httpx.StreamError):
            return ""  # a body cut short, or one already read (a mocked answer): the status decides
        return ""

    async def _try(self, body: dict, timeout: float, deadline: float, sent: list[bool]) -> tuple[int, str]:
        """One try: the status, and a note on the answer's body. Raises TimeoutError or httpx.HTTPError.

        ``sent[0]`` becomes True once the whole request went out (httpcore's trace):
        from then on the forge may have acted on it.
        """

        async def trace(event: str, _info: dict) -> None:
            if event.endswith("send_request_body.complete"):
                sent[0] = True

        request = self._client.build_request(
            "POST", self.url, json=body, headers=self._headers, timeout=httpx.Timeout(timeout),
            extensions={"trace": trace},
        )
        async with asyncio.timeout(timeout):
            answer = await self._client.send(request, stream=True)
        try:
            # The status decides; the body (the forge sends none) is read within what is left.
            loop = asyncio.get_running_loop()
            note = await self._read_some(answer, min(deadline, loop.time() + timeout))
        finally:
            try:
                async with asyncio.timeout(1.0):
                    await answer.aclose()
            except (TimeoutError, httpx.HTTPError):
                pass
        return answer.status_code, note

    async def dispatch(self, body: dict, deadline: float | None = None) -> tuple[bool, str]:
        """Send one dispatch by ``deadline`` (the loop's time; default: now plus the retry's deadline).

        (accepted, what happened) — never raises for a network problem, never runs past the deadline.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        if deadline is None:
            deadline = start + self.retry.deadline_s
        tries = 0
        what = "not tried: no time left"
        while True:
            left = deadline - loop.time()
            if left <= 0.001:
                break
            tries += 1
            timeout = min(self.retry.timeout_s, left)
            status: int | None = None
            sent = [False]
            try:
                status, note = await self._try(body, timeout, deadline, sent)
                what = f"HTTP {status}{note}"
            except (TimeoutError, httpx.TimeoutException) as err:
                # A try the deadline cut short says nothing about the forge: the try
                # before it, if any, says why the dispatch has not gone through.
                if tries == 1 or not self.retry.cut_short(timeout):
                    what = f"no answer within {timeout:.3g}s" if isinstance(err, TimeoutError) else type(err).__name__
            except httpx.HTTPError as err:
                what = f"{type(err).__name__}"
            if status is not None and 200 <= status < 300:
                return True, f"{what} after {tries} {'try' if tries == 1 else 'tries'}"
            self.metrics.forge_errors.inc()
            if status is None and sent[0]:
                # The forge has the request and may have acted on it: another try now could
                # dispatch twice. Alertmanager's next notification tries again.
                what += " (the request was sent; not sent again within this notification)"
                break
            if not transient(status) or tries >= self.retry.max_tries:
                break
            pause = self._jitter(0.0, self.retry.backoff_bound(tries))
            if loop.time() + pause >= deadline:
                break
            await self._sleep(pause)
        return False, f"{what} after {tries} {'try' if tries == 1 else 'tries'} over {loop.time() - start:.1f}s"


#: Takes a service's canary out of traffic (the fast path); raises on failure.
RouteUpdate = Callable[[str], Awaitable[None]]


class Relay:
    """The webhook's handling, independent of the HTTP server around it.

    Each trigger is dispatched at most once at a time: a repeat of one whose
    dispatch is still under way waits for its outcome (until the repeat's own
    deadline) and is never reported as dispatched before the forge accepted it.
    """

    def __init__(
        self,
        stack: str,
        relay_token: str,
        forge: Forge,
        metrics: Metrics,
        route_update: RouteUpdate | None = None,
        services: Iterable[str] | None = None,
        groups: dict[str, str] | None = None,
    ) -> None:
        self.stack = stack
        #: Each grouped service's release group: the dispatch names it, and the Rollback workflow rolls back every member.
        self.groups = dict(groups or {})
        self._expected = f"Bearer {relay_token}".encode()
        self.forge = forge
        self.metrics = metrics
        self.route_update = route_update
        #: The stack's services; a trigger for another is refused (None: not checked).
        self.services = frozenset(services) if services is not None else None
        self._done: OrderedDict[str, None] = OrderedDict()
        #: Dispatches under way: their outcome (accepted or not) once known.
        self._pending: dict[str, asyncio.Future[bool]] = {}
        #: The server's connection guard, once serving (rollout.ops.serving).
        self.guard: Any = None

    @property
    def deadline_s(self) -> float:
        return self.forge.retry.deadline_s

    def authorized(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(errors="surrogateescape"), self._expected)

    def _settle(self, key: str, done: bool) -> None:
        future = self._pending.pop(key, None)
        if done:
            self._done[key] = None
            while len(self._done) > REMEMBERED:
                self._done.popitem(last=False)
        if future is not None and not future.done():
            future.set_result(done)

    async def _one(self, trigger: Trigger, deadline: float) -> str:
        """Dispatch one trigger: "sent", "repeat", "failed" or "in flight" (outcome unknown by the deadline)."""
        loop = asyncio.get_running_loop()
        if trigger.key in self._done:
            self.metrics.skipped.inc()
            return "repeat"
        under_way = self._pending.get(trigger.key)
        if under_way is not None:
            try:
                accepted = await asyncio.wait_for(asyncio.shield(under_way), max(0.0, deadline - loop.time()))
            except TimeoutError:
                log.warning("rollback of %s (%s): its dispatch is still under way; answering so that it is sent again",
                            trigger.service, trigger.reason())
                return "in flight"
            if accepted:
                self.metrics.skipped.inc()
                return "repeat"
            return "failed"
        self._pending[trigger.key] = loop.create_future()
        ok = False
        try:
            if self.route_update is not None:
                await self._take_out_of_traffic(trigger.service, deadline)
            payload = trigger.client_payload(self.stack)
            if trigger.service in self.groups:
                payload["group"] = self.groups[trigger.service]
            ok, what = await self.forge.dispatch({"event_type": EVENT_TYPE, "client_payload": payload}, deadline)
        finally:
            self._settle(trigger.key, ok)
        if ok:
            self.metrics.dispatches.labels(trigger.service).inc()
            self.metrics.last_success.set(time.time())
            log.info("dispatched rollback of %s (%s): %s", trigger.service, trigger.reason(), what)
            return "sent"
        self.metrics.dispatch_failures.labels(trigger.service).inc()
        log.error("dispatch of the rollback of %s (%s) failed: %s", trigger.service, trigger.reason(), what)
        return "failed"

    async def handle(self, found: list[Trigger], deadline: float | None = None) -> tuple[int, dict]:
        """Dispatch each new trigger by ``deadline`` (loop time); the HTTP status and body to answer with.

        200 when every trigger was dispatched now or before; 502 when a dispatch
        failed, 503 when one is still under way (Alertmanager sends the
        notification again on either).
        """
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self.deadline_s
        outcomes = await asyncio.gather(*(self._one(trigger, deadline) for trigger in found))
        pairs = list(zip(found, outcomes))
        body = {
            "dispatched": [t.service for t, o in pairs if o == "sent"],
            "repeats": sum(1 for _, o in pairs if o == "repeat"),
            "failed": [t.service for t, o in pairs if o == "failed"],
            "inFlight": [t.service for t, o in pairs if o == "in flight"],
        }
        status = 502 if body["failed"] else 503 if body["inFlight"] else 200
        return status, body

    async def _take_out_of_traffic(self, service: str, deadline: float) -> None:
        """The fast path, within its share of the deadline: it never holds the dispatch past it."""
        assert self.route_update is not None
        loop = asyncio.get_running_loop()
        share = max(0.0, min(self.deadline_s * FAST_PATH_SHARE, deadline - loop.time()))
        try:
            await asyncio.wait_for(self.route_update(service), share)
        except TimeoutError:
            self.metrics.route_failures.labels(service).inc()
            log.error("fast path: the route of %s was not updated within %.3gs; dispatching without it", service, share)
        except Exception as err:  # noqa: BLE001 - the dispatch goes out all the same
            self.metrics.route_failures.labels(service).inc()
            log.error("fast path: the route of %s was not updated: %s", service, serving.redact(str(err)))
        else:
            self.metrics.route_updates.labels(service).inc()
            log.info("fast path: the canary of %s takes no traffic", service)


def application(relay: Relay, limits: serving.Limits = serving.Limits()) -> web.Application:
    """The aiohttp application serving the webhook, /healthz and /metrics."""

    async def webhook(request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + relay.deadline_s
        if not relay.authorized(request.headers.get("Authorization")):
            relay.metrics.rejected.labels("unauthorized").inc()
            log.warning("refused a webhook request from %s: missing or wrong bearer token", request.remote)
            return web.json_response({"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"})
        try:
            async with asyncio.timeout(min(limits.body_timeout_s, relay.deadline_s)):
                raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            relay.metrics.rejected.labels("too_large").inc()
            log.warning("refused a webhook request from %s: its body is over %d bytes", request.remote, request.client_max_size)
            return web.json_response({"error": f"the body is over {request.client_max_size} bytes"}, status=413)
        except TimeoutError:
            relay.metrics.rejected.labels("slow_body").inc()
            log.warning("refused a webhook request from %s: its body did not arrive within %gs", request.remote,
                        limits.body_timeout_s)
            return web.json_response({"error": "the body did not arrive in time"}, status=408)
        try:
            payload = parse(raw)
            found = triggers(payload, relay.stack, relay.services)
        except BadPayload as err:
            relay.metrics.rejected.labels("bad_payload").inc()
            log.warning("refused a webhook request: %s", err)
            return web.json_response({"error": str(err)}, status=400)
        for name in unnamed(payload):
            log.warning("rollback trigger %s has no %s label: nothing to roll back", name, c.SERVICE_LABEL)
        relay.metrics.notifications.labels(payload.status).inc()
        status, answer = await relay.handle(found, deadline)
        return web.json_response(answer, status=status)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def metrics(_: web.Request) -> web.Response:
        relay.metrics.from_guard(getattr(relay, "guard", None))
        return web.Response(body=generate_latest(relay.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def close(_: web.Application) -> None:
        await relay.forge.close()

    from rollout.ops.webhook import MAX_BODY_BYTES

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post(WEBHOOK_PATH, webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.on_cleanup.append(close)
    return app


async def serve(relay: Relay, host: str, port: int, limits: serving.Limits, started: Callable[[], None] | None = None) -> None:
    """Serve the relay on ``host:port`` behind :mod:`rollout.ops.serving`'s guard until cancelled."""
    limits = serving.fitted(limits)
    runner = web.AppRunner(application(relay, limits), access_log=None, handle_signals=True, **limits.handler_args())
    await runner.setup()
    try:
        server, guard = await serving.start(runner, host, port, limits)
        relay.guard = guard
        if started is not None:
            started()
        try:
            await asyncio.Event().wait()
        finally:
            server.close()
            await server.wait_closed()
    finally:
        await runner.cleanup()

