"""The rollback loop, end to end: from a canary's first failing request to the forge's dispatch.

The path is the one tests/test_e2e_relay.py runs, with production's rendered
rules and routing: a synthetic canary that answers healthy, then fails every
request; a real Prometheus scraping it at the stack's scrape interval and
evaluating at its evaluation interval; a real Alertmanager with the rendered
config (receivers on 127.0.0.1); ``rollout relay`` as a process; a stand-in for
the forge's REST API that notes when the dispatch arrived; and the relay's
fast path against a real kube-apiserver (tests/kube_cluster.py) holding the
service's HTTPRoute and the relay's ServiceAccount and Role as the program
declares them, with a token of that ServiceAccount. Everything binds
127.0.0.1 and stops at the end.

The first failing request is taken as just after the canary's last healthy
scrape (the earliest it can be), so the figure is an upper bound. ``--tiny``
runs at 1 s intervals so the suite's run stays short; the full run uses the
stack's own (production: 15 s).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import ForgeStandIn, MetricsTarget, WebhookSink, receivers_to_loopback, start_alertmanager, start_prometheus, start_relay  # noqa: E402

from rollout.load.stack import load_stack  # noqa: E402
from rollout.build import relay_objects, traffic  # noqa: E402
from rollout.ops import fastpath  # noqa: E402
from rollout.build.render import render  # noqa: E402

TOKEN = "bench-relay-token"
HEALTHY_SCRAPES = 3


class Canary:
    """100 requests a scrape; after HEALTHY_SCRAPES scrapes every request fails. Notes when."""

    def __init__(self) -> None:
        self.last_healthy_at: float | None = None
        self._lock = threading.Lock()

    def __call__(self, scrape: int) -> str:
        with self._lock:
            if scrape == HEALTHY_SCRAPES:
                self.last_healthy_at = time.monotonic()
        failing = max(0, scrape - HEALTHY_SCRAPES)
        return (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{code="200"}} {100 * (scrape - failing)}\n'
            f'http_requests_total{{code="500"}} {100 * failing}\n'
        )


def _healthy(scrape: int) -> str:
    return f'# TYPE http_requests_total counter\nhttp_requests_total{{code="200"}} {100 * scrape}\n'


NAMESPACE = "rollout-bench"


def _cluster_with_route(config, workdir: Path):
    """A test cluster holding the stack's first route and the relay's RBAC; returns (cluster, env for the relay)."""
    from urllib.parse import urlsplit

    from kube_cluster import start_cluster
    from kubernetes import client

    cluster = start_cluster(workdir / "cluster")
    try:
        api = cluster.api()
        core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        service = config.services[0]
        route = traffic.http_route(config, service)
        route["metadata"]["namespace"] = NAMESPACE
        cluster.custom().create_namespaced_custom_object("gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes", route)
        account, role, binding = relay_objects.rbac_objects(NAMESPACE, [s.name for s in config.services])
        core.create_namespaced_service_account(NAMESPACE, account)
        rbac.create_namespaced_role(NAMESPACE, role)
        rbac.create_namespaced_role_binding(NAMESPACE, binding)
        token = core.create_namespaced_service_account_token(relay_objects.NAME, NAMESPACE, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[cluster.server], expiration_seconds=3600))).status.token
        folder = workdir / "serviceaccount"
        folder.mkdir()
        (folder / "token").write_text(token)
        (folder / "ca.crt").write_bytes((cluster.workdir / "pki" / "ca.crt").read_bytes())
        (folder / "namespace").write_text(NAMESPACE)
        server = urlsplit(cluster.server)
        env = {"KUBERNETES_SERVICE_HOST": server.hostname, "KUBERNETES_SERVICE_PORT": str(server.port),
               fastpath.SERVICE_ACCOUNT_DIR_ENV: str(folder)}
        return cluster, env
    except BaseException:
        cluster.stop()
        raise


class RouteWatch(threading.Thread):
    """Polls the route every 50 ms; notes when its canary weight first reads 0."""

    def __init__(self, cluster, service: str) -> None:
        super().__init__(daemon=True)
        self.custom, self.service = cluster.custom(), service
        self.out_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.out_at is None:
            route = self.custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes", self.service)
            if fastpath.live_canary_weight(route, self.service) == 0:
                self.out_at = time.monotonic()
            self.stop.wait(0.05)


def run(stack: str = "production", tiny: bool = False) -> dict:
    config = load_stack(stack)
    interval = 1 if tiny else int(config.monitoring.scrape_interval.total_seconds())
    print(f"8. Rollback loop ({stack}'s rules and routing, scrape and evaluation every {interval} s, real Prometheus, Alertmanager and relay)")
    with tempfile.TemporaryDirectory() as scratch:
        rendered = Path(scratch) / "rendered"
        render(config, stack, rendered)
        canary_page = Canary()
        cluster, relay_env = _cluster_with_route(config, Path(scratch))
        try:
            watch = RouteWatch(cluster, config.services[0].name)
            with (
                WebhookSink() as sink,
                ForgeStandIn() as forge,
                start_relay(stack, forge.url, ROOT, TOKEN, "bench-forge-token", extra_args=("--fast-path",),
                            extra_env=relay_env) as relay,
                MetricsTarget(_healthy) as stable,
                MetricsTarget(canary_page) as canary,
            ):
                document = receivers_to_loopback(yaml.safe_load((rendered / "alertmanager" / "alertmanager.yml").read_text()), sink.url)
                (receiver,) = [r for r in document["receivers"] if r["name"] == "rollback-webhook"]
                webhook = receiver["webhook_configs"][0]
                webhook["url"] = f"{relay.url}/webhook"
                webhook.setdefault("http_config", {"authorization": {"type": "Bearer"}})["authorization"]["credentials"] = TOKEN
                with start_alertmanager(yaml.safe_dump(document)) as alertmanager:
                    prom = yaml.safe_load((rendered / "prometheus" / "prometheus.yml").read_text())
                    prom["global"].update(scrape_interval=f"{interval}s", evaluation_interval=f"{interval}s")
                    prom["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager.url.removeprefix("http://")]}]}]
                    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "rollout-service"]
                    job.pop("scrape_interval", None)
                    for group in job["static_configs"]:
                        group["targets"] = [{"stable": stable, "canary": canary}[group["labels"]["track"]].address]
                    prom["scrape_configs"] = [job]
                    rules = {f"rules/{p.name}": p.read_text() for p in sorted((rendered / "prometheus" / "rules").glob("*.yaml"))}
                    watch.start()
                    with start_prometheus(yaml.safe_dump(prom), rules=rules):
                        deadline = time.monotonic() + (120 if tiny else 600)
                        while time.monotonic() < deadline and not forge.accepted:
                            time.sleep(0.05)
                        dispatched_at = time.monotonic()
                        if not forge.accepted:
                            raise SystemExit("rollback loop: no dispatch reached the forge stand-in")
        finally:
            watch.stop.set()
            cluster.stop()
        watch.join(timeout=5)
        if watch.out_at is None:
            raise SystemExit("rollback loop: the relay's fast path never set the route's canary weight to 0")
        reason = forge.accepted[0]["payload"]["client_payload"]["reason"]
    seconds = dispatched_at - canary_page.last_healthy_at
    scrapes = seconds / interval
    print(f"   first failing request -> dispatch: {seconds:.1f} s ({scrapes:.1f} scrape intervals; trigger {reason.split()[0]})")
    out_of_traffic = watch.out_at - canary_page.last_healthy_at
    print(f"   first failing request -> route update (canary weight 0 in the API server): {out_of_traffic:.1f} s")
    print("   target: a canary failing every request out of traffic within 2 min")
    return {"interval_s": interval, "first_failure_to_dispatch_s": round(seconds, 1), "scrape_intervals": round(scrapes, 2),
            "first_failure_to_route_update_s": round(out_of_traffic, 1), "trigger": reason.split()[0]}


if __name__ == "__main__":
    run(tiny="--tiny" in sys.argv)
