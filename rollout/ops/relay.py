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

With the fast path on, the relay first sets the service's HTTPRoute so the
canary takes no traffic (:mod:`rollout.ops.fastpath`), then dispatches.

The forge call is retried on no answer, 5xx and 429, with exponential backoff
and full jitter inside one deadline (the schedule of
:class:`rollout.ops.http.Retry`). When it still fails, the webhook is
answered 502, so Alertmanager sends the notification again, and the alert is
not marked as dispatched. Tokens appear in no log line and no answer.

The server is aiohttp's; the forge and the Kubernetes API are called with
httpx; the metrics are prometheus_client's.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import httpx
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from rollout.model import conventions as c
from rollout.ops.http import Retry

log = logging.getLogger("rollout.ops.relay")

WEBHOOK_PATH = c.RELAY_WEBHOOK_PATH
EVENT_TYPE = "rollback"
#: How many dispatched alerts the relay remembers (oldest forgotten first).
REMEMBERED = 10_000


@dataclass(frozen=True)
class Trigger:
    """One firing rollback trigger of a webhook payload."""

    #: Identifies the alert's firing: its fingerprint (or labels) and start time.
    key: str
    service: str
    alertname: str
    starts_at: str

    def reason(self) -> str:
        return f"{self.alertname} firing since {self.starts_at}"

    def client_payload(self, stack: str) -> dict[str, str]:
        return {"stack": stack, "service": self.service, "reason": self.reason()}


class BadPayload(ValueError):
    """A webhook body that is not Alertmanager's version 4 payload."""


def triggers(payload: Any) -> list[Trigger]:
    """The firing rollback triggers of an Alertmanager v4 webhook payload, in its order.

    Raises :class:`BadPayload` for anything that is not such a payload. Alerts
    without a ``service`` label cannot name what to roll back and are skipped
    (logged).
    """
    if not isinstance(payload, dict):
        raise BadPayload("the body is not a JSON object")
    if str(payload.get("version")) != "4":
        raise BadPayload(f"version {payload.get('version')!r} is not Alertmanager's webhook version 4")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise BadPayload("alerts is not a list")
    found: list[Trigger] = []
    for alert in alerts:
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise BadPayload("an alert without labels")
        labels = alert["labels"]
        if alert.get("status") != "firing" or labels.get(c.ROLLBACK_LABEL) != "true":
            continue
        service = labels.get(c.SERVICE_LABEL)
        alertname = str(labels.get("alertname", "unnamed alert"))
        if not isinstance(service, str) or not service:
            log.warning("rollback trigger %s has no %s label: nothing to roll back", alertname, c.SERVICE_LABEL)
            continue
        starts_at = str(alert.get("startsAt", ""))
        identity = alert.get("fingerprint") or json.dumps(labels, sort_keys=True)
        found.append(Trigger(f"{identity}@{starts_at}", service, alertname, starts_at))
    return found


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


def transient(status: int | None) -> bool:
    """No answer, a 5xx or 429 (rate limited): worth another try."""
    return status is None or status >= 500 or status == 429


class Forge:
    """The forge's REST API: ``POST /repos/OWNER/NAME/dispatches``."""

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
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/repos/{repository}/dispatches"
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "rollout-relay",
        }
        self.retry = retry
        self.metrics = metrics
        self._client = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self._sleep = sleep
        self._jitter = jitter

    async def close(self) -> None:
        await self._client.aclose()

    async def dispatch(self, body: dict) -> tuple[bool, str]:
        """Send one dispatch; (accepted, what happened) — never raises for a network problem."""
        start = time.monotonic()
        deadline = start + self.retry.deadline_s
        tries = 0
        while True:
            tries += 1
            timeout = max(0.001, min(self.retry.timeout_s, deadline - time.monotonic()))
            status: int | None = None
            try:
                answer = await self._client.post(self.url, json=body, headers=self._headers, timeout=timeout)
                status = answer.status_code
                what = f"HTTP {status}"
            except httpx.TimeoutException:
                what = f"no answer within {timeout:.3g}s"
            except httpx.HTTPError as err:
                what = f"{type(err).__name__}"
            if status is not None and 200 <= status < 300:
                return True, f"{what} after {tries} {'try' if tries == 1 else 'tries'}"
            self.metrics.forge_errors.inc()
            if not transient(status) or tries >= self.retry.max_tries:
                break
            pause = self._jitter(0.0, self.retry.backoff_bound(tries))
            if time.monotonic() + pause >= deadline:
                break
            await self._sleep(pause)
        return False, f"{what} after {tries} {'try' if tries == 1 else 'tries'} over {time.monotonic() - start:.1f}s"


#: Takes a service's canary out of traffic (the fast path); raises on failure.
RouteUpdate = Callable[[str], Awaitable[None]]


class Relay:
    """The webhook's handling, independent of the HTTP server around it."""

    def __init__(self, stack: str, relay_token: str, forge: Forge, metrics: Metrics, route_update: RouteUpdate | None = None,
                 groups: dict[str, str] | None = None) -> None:
        self.stack = stack
        #: Each grouped service's release group: the dispatch names it, and the Rollback workflow rolls back every member.
        self.groups = dict(groups or {})
        self._expected = f"Bearer {relay_token}".encode()
        self.forge = forge
        self.metrics = metrics
        self.route_update = route_update
        self._done: OrderedDict[str, None] = OrderedDict()
        self._pending: set[str] = set()
        self._lock = asyncio.Lock()

    def authorized(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(), self._expected)

    async def _claim(self, key: str) -> bool:
        async with self._lock:
            if key in self._done or key in self._pending:
                return False
            self._pending.add(key)
            return True

    async def _settle(self, key: str, done: bool) -> None:
        async with self._lock:
            self._pending.discard(key)
            if done:
                self._done[key] = None
                while len(self._done) > REMEMBERED:
                    self._done.popitem(last=False)

    async def handle(self, found: list[Trigger]) -> tuple[int, dict]:
        """Dispatch each new trigger; the HTTP status and body to answer Alertmanager with."""
        sent, repeats, failed = [], 0, []
        for trigger in found:
            if not await self._claim(trigger.key):
                repeats += 1
                self.metrics.skipped.inc()
                continue
            ok = False
            try:
                if self.route_update is not None:
                    await self._take_out_of_traffic(trigger.service)
                payload = trigger.client_payload(self.stack)
                if trigger.service in self.groups:
                    payload["group"] = self.groups[trigger.service]
                ok, what = await self.forge.dispatch({"event_type": EVENT_TYPE, "client_payload": payload})
            finally:
                await self._settle(trigger.key, ok)
            if ok:
                self.metrics.dispatches.labels(trigger.service).inc()
                self.metrics.last_success.set(time.time())
                log.info("dispatched rollback of %s (%s): %s", trigger.service, trigger.reason(), what)
                sent.append(trigger.service)
            else:
                self.metrics.dispatch_failures.labels(trigger.service).inc()
                log.error("dispatch of the rollback of %s (%s) failed: %s", trigger.service, trigger.reason(), what)
                failed.append(trigger.service)
        body = {"dispatched": sent, "repeats": repeats, "failed": failed}
        return (502 if failed else 200), body

    async def _take_out_of_traffic(self, service: str) -> None:
        assert self.route_update is not None
        try:
            await self.route_update(service)
        except Exception as err:  # noqa: BLE001 - the dispatch goes out all the same
            self.metrics.route_failures.labels(service).inc()
            log.error("fast path: the route of %s was not updated: %s", service, err)
        else:
            self.metrics.route_updates.labels(service).inc()
            log.info("fast path: the canary of %s takes no traffic", service)


def application(relay: Relay) -> web.Application:
    """The aiohttp application serving the webhook, /healthz and /metrics."""

    async def webhook(request: web.Request) -> web.Response:
        if not relay.authorized(request.headers.get("Authorization")):
            relay.metrics.rejected.labels("unauthorized").inc()
            log.warning("refused a webhook request from %s: missing or wrong bearer token", request.remote)
            return web.json_response({"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"})
        try:
            body = await request.json()
            found = triggers(body)
        except (ValueError, BadPayload) as err:
            relay.metrics.rejected.labels("bad_payload").inc()
            why = str(err) if isinstance(err, BadPayload) else "the body is not JSON"
            log.warning("refused a webhook request: %s", why)
            return web.json_response({"error": why}, status=400)
        relay.metrics.notifications.labels("resolved" if body.get("status") == "resolved" else "firing").inc()
        status, answer = await relay.handle(found)
        return web.json_response(answer, status=status)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(relay.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def close(_: web.Application) -> None:
        await relay.forge.close()

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post(WEBHOOK_PATH, webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.on_cleanup.append(close)
    return app
