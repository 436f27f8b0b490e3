"""How fast the rendered alerts catch a bad canary, and how quiet they stay on healthy traffic.

Each incident runs through `promtool test rules` against the production stack's
rendered rules; the firing alerts are read from promtool's own report of
``ALERTS{alertstate="firing"}`` at every evaluation time (promtool prints what it
got whenever it differs from "nothing firing").
"""

from __future__ import annotations

import random
import re
import subprocess
import tempfile
from pathlib import Path

import yaml

from alerts.catalogue import all_alerts
from alerts.series import Series
from rollout.load.stack import load_stack
from rollout.build.render import render

STEP = 15  # seconds between samples and evaluations in the incident runs
HORIZON = 12 * 60  # seconds followed after an incident starts

_BLOCK = re.compile(r'time: (\S+),\s+exp: nil\s+got: (.*?)(?=\n\s*expr:|\Z)', re.S)
_NAME = re.compile(r'alertname="([^"]+)"')


def _seconds(text: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", text))


def firing_over_time(rules_dir: Path, series: dict[str, str], times: list[int], interval: int) -> dict[int, set[str]]:
    """Alert names firing at each evaluation time (seconds), per promtool."""
    rule_files = sorted(str(p) for p in (rules_dir / "prometheus" / "rules").glob("*.yaml"))
    document = {
        "rule_files": rule_files,
        "evaluation_interval": f"{interval}s",
        "tests": [
            {
                "interval": f"{interval}s",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "promql_expr_test": [
                    {"expr": 'ALERTS{alertstate="firing"}', "eval_time": f"{t}s", "exp_samples": []} for t in times
                ],
            }
        ],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=rules_dir, delete=False) as handle:
        yaml.safe_dump(document, handle, width=1 << 20)
        test_file = handle.name
    result = subprocess.run(["promtool", "test", "rules", test_file], capture_output=True, text=True, timeout=1800)
    firing: dict[int, set[str]] = {t: set() for t in times}
    for when, got in _BLOCK.findall(result.stdout + result.stderr):
        firing[_seconds(when)] = set(_NAME.findall(got))
    return firing


def _canary_share(s: Series, steps: int, canary_errors: int = 0, canary_total: int = 10) -> dict[str, str]:
    """90 % of requests to stable, the rest to the canary, some of them failing."""
    return {
        **s.traffic("stable", 90, steps=steps),
        **s.traffic("canary", canary_total, errors_per_step=canary_errors, steps=steps),
        **s.latency("stable", 90, None, steps=steps),
        **s.latency("canary", canary_total, None, steps=steps),
        s.probe("stable"): f"1x{steps}",
        s.probe("canary"): f"1x{steps}",
        s.up("stable"): f"1x{steps}",
        s.up("canary"): f"1x{steps}",
    }


def incidents(s: Series) -> dict[str, dict[str, str]]:
    steps = HORIZON // STEP + 4
    slow_canary = _canary_share(s, steps)
    # P99 of 1.5 s: 3 of 200 requests in the (1 s, 2.5 s] bucket interpolate to 1.5 s.
    for bound in ("0.1", "0.2", "0.5", "1"):
        slow_canary[s.bucket("canary", bound)] = f"0+197x{steps}"
    for bound in ("2.5", "+Inf"):
        slow_canary[s.bucket("canary", bound)] = f"0+200x{steps}"
    slow_canary[s.count("canary")] = f"0+200x{steps}"
    failing_checks = _canary_share(s, steps)
    failing_checks[s.probe("canary")] = f"0x{steps}"
    outage = {
        s.up("stable"): f"0x{steps}",
        s.up("canary"): f"0x{steps}",
        s.probe("stable"): f"0x{steps}",
        s.probe("canary"): f"0x{steps}",
    }
    return {
        "canary failing every request": _canary_share(s, steps, canary_errors=10),
        "canary at 2 % errors": _canary_share(s, steps, canary_errors=1, canary_total=50),
        "canary with P99 at 1.5 s": slow_canary,
        "canary failing its health checks": failing_checks,
        "total outage (both tracks down)": outage,
    }


def healthy_day(s: Series, step: int, seed: int = 7) -> dict[str, str]:
    """24 h sampled every ``step`` seconds: traffic that breathes, a rare 5xx, a slow
    tail, a failed health check every few hours."""
    rng = random.Random(seed)
    scale = step / 60
    minutes = 24 * 3600 // step
    series: dict[str, list[float]] = {}

    def add(name: str, values: list[float]) -> None:
        series[name] = values

    for track, base in (("stable", int(5400 * scale)), ("canary", int(600 * scale))):
        total = ok = errors = 0
        totals, oks, errs = [], [], []
        fast = mid = slow = 0
        fasts, mids, slows = [], [], []
        for _ in range(minutes + 1):
            n = max(0, int(rng.gauss(base, base * 0.1)))
            e = 1 if rng.random() < 0.02 * scale else 0  # about 0.0004 % of requests
            total, errors, ok = total + n, errors + e, ok + n - e
            m = int(n * 0.004)  # 0.4 % between 0.2 s and 0.5 s: the tail stays under the P95 objective
            fast, mid = fast + n - m, mid + m
            oks.append(ok)
            errs.append(errors)
            fasts.append(fast)
            mids.append(mid)
            totals.append(total)
        add(s.requests(track), oks)
        add(s.requests(track, "500"), errs)
        for bound in ("0.1", "0.2"):
            add(s.bucket(track, bound), fasts)
        for bound in ("0.5", "1", "2.5", "+Inf"):
            add(s.bucket(track, bound), [a + b for a, b in zip(fasts, mids)])
        add(s.count(track), totals)
        # About four isolated failed checks a day per track.
        add(s.probe(track), [0.0 if rng.random() < 4 / minutes else 1.0 for _ in range(minutes + 1)])
        add(s.up(track), [1.0] * (minutes + 1))
    add('ci_test_pass_ratio{job="rollout-ci",suite="unit"}', [1.0] * (minutes + 1))
    add('push_time_seconds{job="rollout-ci"}', [float(step * i) for i in range(minutes + 1)])
    return {name: " ".join(f"{v:g}" for v in values) for name, values in series.items()}


def run(stack: str = "production", tiny: bool = False) -> dict:
    config = load_stack(stack)
    catalogue = all_alerts(config)
    pages = {a.name for a in catalogue if a.priority in ("P0", "P1")}
    triggers = {a.name for a in catalogue if a.rollback}
    s = Series(config)
    figures: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        rendered = Path(scratch)
        render(config, stack, rendered)
        print(f"3. Detection ({stack}'s rules, promtool, one evaluation every {STEP} s)")
        times = list(range(0, HORIZON + 1, STEP))
        chosen = incidents(s)
        if tiny:
            chosen = dict(list(chosen.items())[:1])
        for name, series in chosen.items():
            firing = firing_over_time(rendered, series, times, STEP)
            first_page = next((t for t in times if firing[t] & pages), None)
            first_trigger = next((t for t in times if firing[t] & triggers), None)
            which = sorted((firing[first_trigger] & triggers) if first_trigger is not None else [])
            figures[name] = {"first_page_s": first_page, "first_rollback_trigger_s": first_trigger, "triggers": which}
            print(
                f"   {name:>34}: first page {_fmt(first_page)}, first rollback trigger {_fmt(first_trigger)}"
                + (f" ({', '.join(which)})" if which else "")
            )
        if not tiny:
            # Sampled at the stack's scrape interval, as Prometheus would see it.
            step = int(config.monitoring.scrape_interval.total_seconds())
            day = healthy_day(s, step)
            every_minute = list(range(0, 24 * 3600 + 1, 60))
            firing = firing_over_time(rendered, day, every_minute, step)
            noisy = sorted({n for names in firing.values() for n in names} - {"Watchdog"})
            figures["healthy 24 h"] = {"alerts": noisy}
            print(f"   {'24 h of healthy, noisy traffic':>34}: {len(noisy)} alerts fired {noisy if noisy else ''}")
        print("   targets: a total outage pages within 2 min; every rollback trigger within 6 min; 0 alerts on healthy traffic")
    return figures


def _fmt(seconds: int | None) -> str:
    if seconds is None:
        return f"never (within {HORIZON // 60} min)"
    return f"{seconds // 60}m{seconds % 60:02d}s"
