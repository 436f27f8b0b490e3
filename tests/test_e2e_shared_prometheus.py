"""End to end: two stacks share one Prometheus, and each is judged on its own traffic only.

staging and production both ship ``genesis``, 26 h into their 10 % stage, and an
existing operator's Prometheus holds both: staging's canary is healthy,
production's is not (3 % errors, slow, eight failed health checks in a row); each
stack's other track looks the opposite way. The series carry each stack's
namespace, as the operator labels its targets. Prometheus loads both stacks' rules,
as it would load both stacks' PrometheusRules. Then ``rollout evidence`` of each
stack must give exactly the figures of its own canary, and the rollback triggers
of each (their SLIs and the pending alert) must see only their own.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from alerts.catalogue import rule_groups
from conftest import edit_stack
from rollout.model import conventions
from rollout.load.stack import load_stack
from servers import start_backfilled_prometheus
from test_cli_rollout import commit_all, rollout
from test_e2e_gates import HEALTHY, STEP, UNHEALTHY, openmetrics

pytestmark = pytest.mark.e2e

STACKS = {"staging": "rollout-staging", "production": "rollout-production"}


@pytest.fixture
def shared(project: Path, tmp_path: Path):
    now = int(time.time()) // STEP * STEP
    stage = now - 26 * 3600
    at = lambda seconds: datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731

    def change(config: dict) -> None:
        config["rollout:monitoring"]["install"] = False
        config["rollout:services"][0]["rollout"]["history"] = [
            {"weight": 0, "startedAt": at(stage - 4 * 86400)},
            {"weight": 5, "startedAt": at(stage - 2 * 86400)},
            {"weight": 10, "startedAt": at(stage)},
        ]

    for stack in STACKS:
        edit_stack(project, stack, change)
    commit_all(project)
    text = openmetrics(
        {"genesis": {"canary": (HEALTHY, HEALTHY), "stable": (UNHEALTHY, UNHEALTHY)}},
        start=stage - 2 * 3600, stage=stage, end=now - STEP, namespace=STACKS["staging"],
        others={STACKS["production"]: {"genesis": {"canary": (UNHEALTHY, UNHEALTHY), "stable": (HEALTHY, HEALTHY)}}},
    )
    rules = {
        f"rules/{stack}.yaml": yaml.safe_dump({"groups": rule_groups(load_stack(stack, project))}, sort_keys=False)
        for stack in STACKS
    }
    prometheus_yml = yaml.safe_dump({
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": sorted(rules),
    })
    with start_backfilled_prometheus(text, tmp_path, prometheus_yml, rules=rules) as prometheus:
        yield project, prometheus, tmp_path


def _evidence(project: Path, stack: str, prometheus, out: Path) -> dict:
    collected = rollout(project, "evidence", "--stack", stack, "--prometheus", prometheus.url, "--out", str(out))
    assert collected.returncode == 0, collected.stderr
    document = json.loads(out.read_text())
    return {m: q["value"] for m, q in document["services"]["genesis"]["queries"].items()}


def test_each_stacks_evidence_and_rollback_triggers_see_only_its_own_traffic(shared):
    project, prometheus, tmp_path = shared
    staging = _evidence(project, "staging", prometheus, tmp_path / "staging.json")
    production = _evidence(project, "production", prometheus, tmp_path / "production.json")
    # Exactly one canary's figures each: a query that read both stacks would count
    # twice the requests and mix the error ratios and failure runs.
    assert staging["requests"] == pytest.approx(26 * 60 * 300, rel=0.01)
    assert production["requests"] == pytest.approx(26 * 60 * 300, rel=0.01)
    assert staging["errorRatio"] == pytest.approx(1 / 300, rel=0.01)
    assert production["errorRatio"] == pytest.approx(9 / 300, rel=0.01)
    assert (staging["consecutiveFailedHealthChecks"], production["consecutiveFailedHealthChecks"]) == (2, 8)
    assert staging["latencyP99Seconds"] < 0.5 and production["latencyP99Seconds"] == pytest.approx(2.5)

    # The gates agree: staging's canary may advance, production's may not.
    assert rollout(project, "check", "--stack", "staging", "--evidence", str(tmp_path / "staging.json")).returncode == 0
    refused = rollout(project, "advance", "--stack", "production", "--dry-run", "--evidence", str(tmp_path / "production.json"))
    assert refused.returncode == 1
    assert "rollout-canary-within-budget (service genesis): longest run of failed health checks over the 10% stage is 8" in refused.stderr

    # The rollback triggers: each stack's SLI series, and the sustained trigger
    # pending for production's canary only (its for has not passed yet).
    deadline = time.monotonic() + 90
    ratios: dict[str, float] = {}
    pending: set[str] = set()
    while time.monotonic() < deadline and (len(ratios) < 2 or not pending):
        result = prometheus.query(f'{conventions.ERROR_RATIO}{{{conventions.TRACK_LABEL}="{conventions.CANARY}"}}')
        ratios = {r["metric"]["namespace"]: float(r["value"][1]) for r in result}
        alerts = prometheus.query('ALERTS{alertname="CanaryErrorRateHigh"}')
        pending = {a["metric"]["namespace"] for a in alerts}
        time.sleep(0.5)
    assert set(ratios) == set(STACKS.values()), "each stack records its own canary's SLI"
    config = load_stack("production", project)
    assert ratios["rollout-staging"] <= config.canary.max_error_ratio < ratios["rollout-production"]
    assert pending == {"rollout-production"}
    # Each rule wrote its own stack's series only: one series per stack, never a collision.
    recorded = prometheus.query(f"count by (namespace) ({conventions.REQUEST_RATE})")
    assert {r["metric"]["namespace"]: r["value"][1] for r in recorded} == {"rollout-staging": "2", "rollout-production": "2"}
