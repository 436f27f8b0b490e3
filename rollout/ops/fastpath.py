"""The relay's fast path: take a failing canary out of traffic in the cluster, before the rollback deploys.

The relay reads the service's HTTPRoute (named as the service, see
:func:`rollout.build.traffic.http_route`), and patches it with a JSON Patch that sets
the canary backend's weight to 0 and the stable backend's to 100. The patch
first tests the route's ``resourceVersion``, so an edit made between the read
and the patch makes the patch fail (HTTP 422) instead of overwriting it; the
relay then reads again. It writes with its own field manager
(:data:`FIELD_MANAGER`), so ``kubectl get httproute -o yaml --show-managed-fields``
shows who set the weight, and the next ``pulumi up`` (which applies the
weights of the stack file) takes the field back.

Its ServiceAccount may only ``get`` and ``patch`` the stack's routes, by name
(:func:`rollout.build.relay_objects.rbac_objects`): nothing else in the namespace.

Until the rollback commit deploys, the cluster and the stack file disagree: the
gates read the live weight (``rollout evidence`` records it) and refuse an up
that would give the canary traffic again before the history records the
rollback (:func:`rollout.gates.judge` ``live_route``).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from pathlib import Path
from typing import Any, Iterable

import httpx

from rollout.model import conventions as c
from rollout.load.files import read_json_file
from rollout.model import jsontext
from rollout.model.errors import UsageError
from rollout.model.jsontext import MAX_API_ANSWER_BYTES

FIELD_MANAGER = "rollout-relay"
#: Where the pod's ServiceAccount token, ca.crt and namespace are mounted;
#: $ROLLOUT_SERVICE_ACCOUNT_DIR names another folder of the same layout (a relay
#: run outside a pod, against the API server of KUBERNETES_SERVICE_HOST/PORT).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNT_DIR_ENV = "ROLLOUT_SERVICE_ACCOUNT_DIR"


def service_account_dir() -> Path:
    configured = os.environ.get(SERVICE_ACCOUNT_DIR_ENV)
    return Path(configured) if configured else SERVICE_ACCOUNT_DIR


class RouteError(RuntimeError):
    """The route could not be read or patched."""


def backend_track(service: str, backend: dict) -> str | None:
    """``stable`` or ``canary`` for a backendRef of ``service``'s route, else None."""
    for track in c.TRACKS:
        if backend.get("name") == f"{service}-{track}" and backend.get("kind", "Service") == "Service":
            return track
    return None


def canary_out_patch(route: dict, service: str) -> list[dict]:
    """A JSON Patch (RFC 6902) giving ``service``'s canary weight 0 and its stable track 100.

    It starts with a ``test`` of the route's resourceVersion. Raises
    :class:`RouteError` when the route has no canary and stable backend to set.
    An empty list means the canary already takes no traffic.
    """
    rules = (route.get("spec") or {}).get("rules") or []
    ops: list[dict] = []
    tracks_seen: set[str] = set()
    for i, rule in enumerate(rules):
        for j, backend in enumerate(rule.get("backendRefs") or []):
            track = backend_track(service, backend)
            if track is None:
                continue
            tracks_seen.add(track)
            want = 0 if track == c.CANARY else 100
            if backend.get("weight", 1) != want:
                ops.append({"op": "add", "path": f"/spec/rules/{i}/backendRefs/{j}/weight", "value": want})
    if tracks_seen != set(c.TRACKS):
        raise RouteError(f"HTTPRoute {service} has no {' and '.join(sorted(set(c.TRACKS) - tracks_seen))} backend of {service}")
    if not ops:
        return []
    version = (route.get("metadata") or {}).get("resourceVersion")
    if not version:
        raise RouteError(f"HTTPRoute {service} has no resourceVersion")
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": version}, *ops]


def live_canary_weight(route: dict, service: str) -> int | None:
    """The canary's share of the route's traffic in percent (None when the route has no such backends)."""
    weights = {c.STABLE: 0, c.CANARY: 0}
    seen = False
    for rule in (route.get("spec") or {}).get("rules") or []:
        for backend in rule.get("backendRefs") or []:
            track = backend_track(service, backend)
            if track is not None:
                seen = True
                weights[track] += int(backend.get("weight", 1))
    total = sum(weights.values())
    if not seen:
        return None
    return 0 if total == 0 else round(100 * weights[c.CANARY] / total)


class RouteUpdater:
    """Sets a service's HTTPRoute so its canary takes no traffic, through the Kubernetes API."""

    def __init__(self, api_url: str, namespace: str, token: str, ca_file: str | None, tries: int = 3, timeout_s: float = 5.0) -> None:
        self.namespace = namespace
        self.base = f"{api_url.rstrip('/')}/apis/{c.GATEWAY_API_GROUP}/{c.GATEWAY_API_VERSION}/namespaces/{namespace}/httproutes"
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": FIELD_MANAGER}
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._client = httpx.AsyncClient(verify=verify, timeout=timeout_s)
        self.tries = tries

    @classmethod
    def in_cluster(cls, namespace: str | None = None) -> "RouteUpdater":
        """From the pod's ServiceAccount: the API server's address, token, CA and namespace."""
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        folder = service_account_dir()
        token_file = folder / "token"
        if not host or not token_file.is_file():
            raise RouteError("not in a Kubernetes pod: KUBERNETES_SERVICE_HOST or the ServiceAccount token is missing")
        if ":" in host:
            host = f"[{host}]"
        ns = namespace or (folder / "namespace").read_text().strip()
        return cls(f"https://{host}:{port}", ns, token_file.read_text().strip(), str(folder / "ca.crt"))

    async def _get_route(self, url: str) -> tuple[int, Any]:
        """GET the route: (status, document); the body read up to the cap, its JSON within bounds."""
        async with self._client.stream("GET", url, headers=self._headers) as answer:
            if answer.status_code != 200:
                return answer.status_code, None
            body = bytearray()
            async for chunk in answer.aiter_raw():
                body += chunk
                if len(body) > MAX_API_ANSWER_BYTES:
                    raise RouteError(f"reading HTTPRoute {self.namespace}/{url.rsplit('/', 1)[1]}: "
                                     f"an answer over {MAX_API_ANSWER_BYTES} bytes")
        try:
            return 200, jsontext.loads(bytes(body), max_bytes=MAX_API_ANSWER_BYTES)
        except jsontext.JsonRefused as err:
            raise RouteError(f"reading HTTPRoute {self.namespace}/{url.rsplit('/', 1)[1]}: {err}") from None

    async def __call__(self, service: str) -> None:
        """Take the canary out of traffic. The caller bounds the time (the relay gives it a share of
        its deadline); each request also has the per-request timeout of httpx."""
        url = f"{self.base}/{service}"
        for attempt in range(1, self.tries + 1):
            try:
                status, route = await self._get_route(url)
                if status != 200:
                    raise RouteError(f"reading HTTPRoute {self.namespace}/{service}: HTTP {status}")
                if not isinstance(route, dict):
                    raise RouteError(f"reading HTTPRoute {self.namespace}/{service}: not an object")
                patch = canary_out_patch(route, service)
                if not patch:
                    return
                async with self._client.stream(
                    "PATCH",
                    url,
                    params={"fieldManager": FIELD_MANAGER},
                    headers={**self._headers, "Content-Type": "application/json-patch+json"},
                    content=json.dumps(patch).encode(),
                ) as answer:
                    patched = answer.status_code
            except httpx.HTTPError as err:
                if attempt == self.tries:
                    raise RouteError(f"HTTPRoute {self.namespace}/{service}: {type(err).__name__}") from None
                await asyncio.sleep(0.2 * attempt)
                continue
            if patched == 200:
                return
            # 409/422: the route changed since it was read (the test op failed); read again.
            if patched not in (409, 422) and patched < 500 or attempt == self.tries:
                raise RouteError(f"patching HTTPRoute {self.namespace}/{service}: HTTP {patched}")
            await asyncio.sleep(0.2 * attempt)

    async def close(self) -> None:
        await self._client.aclose()


def set_by_relay(route: dict) -> bool:
    """Whether the relay's field manager owns a field of the route (it patched the weights)."""
    return any(entry.get("manager") == FIELD_MANAGER for entry in (route.get("metadata") or {}).get("managedFields") or [])


def live_routes(document: Any, services: Iterable[str]) -> dict[str, dict | None]:
    """Per service, its live route's canary weight, from ``kubectl get httproutes -o json``.

    Raises ValueError for a document that is not a list of HTTPRoutes.
    """
    if isinstance(document, dict) and document.get("kind") == "HTTPRoute":
        items = [document]
    elif isinstance(document, dict) and isinstance(document.get("items"), list):
        items = document["items"]
    else:
        raise ValueError("not an HTTPRoute or a list of them (kubectl get httproutes -o json)")
    by_name = {(item.get("metadata") or {}).get("name"): item for item in items if isinstance(item, dict)}
    found: dict[str, dict | None] = {}
    for service in services:
        route = by_name.get(service)
        weight = live_canary_weight(route, service) if route else None
        # kubectl hides managedFields unless --show-managed-fields: then who wrote the weights is not known.
        shown = "managedFields" in (route.get("metadata") or {}) if route else False
        found[service] = None if weight is None else {"canaryWeight": weight, "setByRelay": set_by_relay(route),
                                                      "managedFields": shown}
    return found


def read_live_routes(path: str, services: Iterable[str]) -> dict[str, dict | None]:
    """:func:`live_routes` of the file ``--live-routes`` names; an unreadable file or document is bad input."""
    document = read_json_file(Path(path), "--live-routes")
    try:
        return live_routes(document, services)
    except (TypeError, ValueError) as err:
        raise UsageError(f"--live-routes {path}: {err}") from None
