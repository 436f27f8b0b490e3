"""What the stack's rules cost a real Prometheus holding about 10,000 series, against their floor.

A synthetic exporter on 127.0.0.1 serves the metric contract for many
services; the real Prometheus (Debian's) scrapes it and evaluates the
production stack's rendered rules. The cost is the time all rule groups take
per evaluation (``prometheus_rule_group_last_duration_seconds``) as a share of
the stack's evaluation interval.

The floor is evaluated by the same Prometheus on the same series, beside the
shipped groups: the least rules that read each raw series family once, one
aggregation per family to the labels a per-service SLI needs (requests by
service, track and code; duration buckets by service, track and le; probe
results by service and track). Any rule set that computes the SLIs reads at
least that much; the shipped SLI and SLO groups are held to a small multiple of it.

Where the shipped groups' time goes, rule by rule (``/api/v1/rules``, medians of the
same evaluations): the rules that read a raw family (the floor's work, scoped to the
stack), the recordings the alerts read (directly or through other recordings: the
quantiles and burn-rate windows the alerts compare), and recordings nothing alerts
on (dashboards read them). The floor plus the alerts' recordings is the least the
shipped alerts need evaluated every interval, whatever the rules are called.
"""

from __future__ import annotations

import random
import re
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import LOOPBACK, http_json, start_prometheus  # noqa: E402

from rollout.load.stack import load_stack  # noqa: E402
from rollout.model import scope  # noqa: E402
from rollout.build.render import render  # noqa: E402

BUCKETS = ("0.1", "0.2", "0.5", "1", "2.5", "+Inf")


class SyntheticExporter:
    """Serves the metric contract for ``services`` services × 2 tracks × 2 instances.

    Every scrape advances the counters by a random amount, so rates and
    quantiles have something to compute.
    """

    def __init__(self, services: int, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.keys = [
            (f"svc-{i:03d}", track, f"i{n}") for i in range(services) for track in ("stable", "canary") for n in range(2)
        ]
        self.state = {key: [0, 0, [0] * len(BUCKETS)] for key in self.keys}
        self.lock = threading.Lock()

    def series_count(self) -> int:
        return len(self.keys) * (2 + len(BUCKETS) + 1 + 1)

    def text(self) -> str:
        lines = []
        with self.lock:
            for (service, track, instance), state in self.state.items():
                n = self.rng.randint(50, 150)
                errors = 1 if self.rng.random() < 0.01 else 0
                state[0] += n - errors
                state[1] += errors
                fast = n - self.rng.randint(0, 3)
                for index, bound in enumerate(BUCKETS):
                    state[2][index] += fast if index < 2 else n
                labels = f'service="{service}",track="{track}",pod="{instance}"'
                lines.append(f'http_requests_total{{{labels},code="200"}} {state[0]}')
                lines.append(f'http_requests_total{{{labels},code="500"}} {state[1]}')
                for bound, value in zip(BUCKETS, state[2]):
                    lines.append(f'http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {value}')
                lines.append(f"http_request_duration_seconds_count{{{labels}}} {state[2][-1]}")
                lines.append(f"probe_success{{{labels}}} 1")
        return "\n".join(lines) + "\n"

    def __enter__(self) -> "SyntheticExporter":
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = exporter.text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.address = f"{LOOPBACK}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


FLOOR_GROUP = "floor"
#: The shipped groups the floor stands for: the SLI recordings and the SLO windows built on them.
SHIPPED_GROUPS = ("rollout-sli", "rollout-slo")


def floor_rules(config) -> str:
    """One rule per raw series family: the least any SLI rule set must read."""
    m = config.metrics
    by = "service, track"
    group = {
        "name": FLOOR_GROUP,
        "rules": [
            {"record": "floor:requests:rate5m", "expr": f"sum by ({by}, code) (rate({m.requests_total}[5m]))"},
            {"record": "floor:buckets:rate5m", "expr": f"sum by ({by}, le) (rate({m.request_duration_bucket}[5m]))"},
            {"record": "floor:probe_success:avg5m", "expr": f"avg by ({by}) (avg_over_time({m.probe_success}[5m]))"},
        ],
    }
    return yaml.safe_dump({"groups": [group]}, sort_keys=False)


def alerts_read(groups: list[dict]) -> set[str]:
    """The recorded series the alerts of ``groups`` read, directly or through other recordings."""
    records: dict[str, list[str]] = {}
    for group in groups:
        for rule in group["rules"]:
            if "record" in rule:
                records.setdefault(rule["record"], []).append(rule["expr"])
    needed: set[str] = set()
    pending = [rule["expr"] for group in groups for rule in group["rules"] if "alert" in rule]
    while pending:
        expr = pending.pop()
        for name, exprs in records.items():
            if name not in needed and re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", expr):
                needed.add(name)
                pending.extend(exprs)
    return needed


def attribute(config, groups: list[dict], rule_seconds: dict[tuple[str, int], float]) -> dict[str, float]:
    """The shipped groups' rule time split three ways: ``reads`` (rules that read a raw family),
    ``alerts`` (other recordings the alerts read), ``unalerted`` (recordings no alert reads)."""
    m = config.metrics
    families = "|".join(re.escape(name) for name in (m.requests_total, m.request_duration_bucket, m.probe_success))
    raw = re.compile(rf"(?<![\w:])({families})(?![\w:])")
    needed = alerts_read(groups)
    split = {"reads": 0.0, "alerts": 0.0, "unalerted": 0.0}
    for group in groups:
        if group["name"] not in SHIPPED_GROUPS:
            continue
        for index, rule in enumerate(group["rules"]):
            seconds = rule_seconds.get((group["name"], index), 0.0)
            if raw.search(rule["expr"]):
                split["reads"] += seconds
            elif rule.get("record") in needed:
                split["alerts"] += seconds
            else:
                split["unalerted"] += seconds
    return split


def run(stack: str = "production", services: int = 250, settle_s: float = 40, tiny: bool = False) -> dict:
    config = load_stack(stack)
    interval = config.monitoring.evaluation_interval.total_seconds()
    if tiny:
        services, settle_s = 10, 12
    with tempfile.TemporaryDirectory() as scratch, SyntheticExporter(services) as exporter:
        rendered = Path(scratch)
        render(config, stack, rendered)
        rules = {f"rules/{p.name}": p.read_text() for p in sorted((rendered / "prometheus" / "rules").glob("*.yaml"))}
        rules[f"rules/{FLOOR_GROUP}.yaml"] = floor_rules(config)
        prometheus_yml = {
            # Evaluate often to collect several measurements quickly; the cost of
            # one evaluation does not depend on how often it runs.
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "rule_files": ["rules/*.yaml"],
            "scrape_configs": [
                {
                    "job_name": "rollout-service",
                    # The stack's scope (its namespace), as the operator labels its targets:
                    # the rules read only the stack's series.
                    "static_configs": [{"targets": [exporter.address], "labels": scope.labels(config)}],
                    "honor_labels": True,
                },
            ],
        }
        with start_prometheus(yaml.safe_dump(prometheus_yml), rules=rules) as prometheus:
            prometheus_yml["scrape_configs"].append({"job_name": "prometheus", "static_configs": [{"targets": [prometheus.url.removeprefix("http://")]}]})
            (prometheus.workdir / "prometheus.yml").write_text(yaml.safe_dump(prometheus_yml))
            prometheus.reload()
            time.sleep(settle_s)
            # Per group, the median of several evaluations' durations.
            samples: dict[str, list[float]] = {}
            rule_samples: dict[tuple[str, int], list[float]] = {}
            for _ in range(3 if tiny else 15):
                for r in prometheus.query("prometheus_rule_group_last_duration_seconds"):
                    samples.setdefault(r["metric"]["rule_group"].rsplit(";", 1)[-1], []).append(float(r["value"][1]))
                rules_now = http_json(f"{prometheus.url}/api/v1/rules")["data"]["groups"]
                for group in rules_now:
                    for index, rule in enumerate(group["rules"]):
                        rule_samples.setdefault((group["name"], index), []).append(rule.get("evaluationTime", 0.0))
                time.sleep(2)
            head = prometheus.query("prometheus_tsdb_head_series")
    costliest = sorted(
        ((rule.get("evaluationTime", 0.0), group["name"], rule["name"]) for group in rules_now for rule in group["rules"]),
        reverse=True,
    )[:12]
    rule_seconds = {key: statistics.median(values) for key, values in rule_samples.items()}
    rule_groups = [group for text in rules.values() for group in yaml.safe_load(text)["groups"]]
    split = attribute(config, rule_groups, rule_seconds)
    per_group = {group: statistics.median(values) for group, values in samples.items()}
    floor = per_group.pop(FLOOR_GROUP, float("nan"))
    shipped = sum(per_group.get(group, 0.0) for group in SHIPPED_GROUPS)
    duration = sum(per_group.values())
    share = duration / interval
    series = int(float(head[0]["value"][1])) if head else exporter.series_count()
    print(f"4. Rule cost ({stack}'s rules on a real Prometheus with {series} series, "
          f"{exporter.series_count()} of them raw, {len(per_group)} groups)")
    print(f"   all groups take {duration * 1000:.1f} ms per evaluation: {share:.3%} of the {interval:g} s interval (target: under 1 %)")
    for group, seconds in sorted(per_group.items(), key=lambda item: -item[1]):
        print(f"     {group:>24}: {seconds * 1000:7.1f} ms")
    print("   the costliest rules (one evaluation each):")
    for seconds, group, name in costliest:
        print(f"     {seconds * 1000:7.1f} ms  {group}: {name}")
    print(f"   floor (each raw family read once, beside them): {floor * 1000:.1f} ms, {floor / interval:.3%} of the interval")
    print(f"   {' + '.join(SHIPPED_GROUPS)} against the floor: {shipped / floor:.2f}x (target: at most 1.5x)")
    least = floor + split["alerts"]
    print(f"   where their rules' time goes (medians per rule): raw reads {split['reads'] * 1000:.1f} ms "
          f"({split['reads'] / floor:.2f}x the floor), recordings the alerts read {split['alerts'] * 1000:.1f} ms, "
          f"recordings no alert reads {split['unalerted'] * 1000:.1f} ms")
    print(f"   the least the shipped alerts need each interval (the floor and the alerts' recordings): "
          f"{least * 1000:.1f} ms, {least / floor:.2f}x the floor")
    return {"series": series, "raw_series": exporter.series_count(), "groups": len(per_group),
            "duration_ms": round(duration * 1000, 2), "share": round(share, 5),
            "floor_ms": round(floor * 1000, 2), "shipped_ms": round(shipped * 1000, 2),
            "floor_ratio": round(shipped / floor, 3),
            "reads_ms": round(split["reads"] * 1000, 2), "alerts_recordings_ms": round(split["alerts"] * 1000, 2),
            "unalerted_ms": round(split["unalerted"] * 1000, 2), "alerts_least_ratio": round(least / floor, 3)}
