"""The rollback loop, end to end: from a canary's first failing request to the forge's dispatch.

The path is the one tests/test_e2e_relay.py runs, with production's rendered
rules and routing: a synthetic canary that answers healthy, then fails every
request; a real Prometheus scraping it at the stack's scrape interval and
evaluating at its evaluation interval; a real Alertmanager with the rendered
config (receivers on 127.0.0.1); ``rollout relay`` as a process; a stand-in for
the forge's REST API that notes when the dispatch arrived. Everything binds
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

from rollout.loader import load_stack  # noqa: E402
from rollout.render import render  # noqa: E402

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


def run(stack: str = "production", tiny: bool = False) -> dict:
    config = load_stack(stack)
    interval = 1 if tiny else int(config.monitoring.scrape_interval.total_seconds())
    print(f"8. Rollback loop ({stack}'s rules and routing, scrape and evaluation every {interval} s, real Prometheus, Alertmanager and relay)")
    with tempfile.TemporaryDirectory() as scratch:
        rendered = Path(scratch) / "rendered"
        render(config, stack, rendered)
        canary_page = Canary()
        with (
            WebhookSink() as sink,
            ForgeStandIn() as forge,
            start_relay(stack, forge.url, ROOT, TOKEN, "bench-forge-token") as relay,
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
                with start_prometheus(yaml.safe_dump(prom), rules=rules):
                    deadline = time.monotonic() + (120 if tiny else 600)
                    while time.monotonic() < deadline and not forge.accepted:
                        time.sleep(0.05)
                    dispatched_at = time.monotonic()
                    if not forge.accepted:
                        raise SystemExit("rollback loop: no dispatch reached the forge stand-in")
        reason = forge.accepted[0]["payload"]["client_payload"]["reason"]
    seconds = dispatched_at - canary_page.last_healthy_at
    scrapes = seconds / interval
    print(f"   first failing request -> dispatch: {seconds:.1f} s ({scrapes:.1f} scrape intervals; trigger {reason.split()[0]})")
    print("   target: a canary failing every request out of traffic within 2 min (the route update: pending a Kubernetes API server in the tests)")
    return {"interval_s": interval, "first_failure_to_dispatch_s": round(seconds, 1), "scrape_intervals": round(scrapes, 2), "trigger": reason.split()[0]}


if __name__ == "__main__":
    run(tiny="--tiny" in sys.argv)
