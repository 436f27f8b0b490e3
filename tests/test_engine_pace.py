"""A `safe` release rehearsed through staging and production at the pace the plan promises.

The real engine deploys each step on a local backend (the stacks write their
manifests to a folder, so no cluster is needed), and each stack has its own real
Prometheus, backfilled with the canary's traffic as the plan schedules it: the
canary takes each stage's share from the moment the stage was recorded, as it
does when the deploy follows the record. With ``--now`` the rehearsal walks the
release from its 0 % entry ten days ago: at each time ``rollout plan`` and
``rollout status`` announce, ``rollout stage`` gathers the evidence against the
deployed state (the backend's), advances and writes the pack's config, and
``pulumi up`` deploys it. Every advance is taken at the announced time (one
second earlier ``status`` says it waits), so both stacks complete at their
plan's nominal completion, well within it plus one Stage watch interval (an
hour) per stage. The rehearsal runs the engine without the policy pack: the pack
judges at the real clock, and evidence of a rehearsed past is stale by it
(tests/test_engine.py and tests/test_kube_engine.py run the pack on each step).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

import figures
from engine import EngineProject, commit_all, engine_project, service
from rollout.model import conventions
from servers import start_backfilled_prometheus

pytestmark = pytest.mark.engine

SERVICE = "genesis"
OLD, R = "ghcr.io/example/genesis:1.4.2", "ghcr.io/example/genesis:1.5.0"
STEP = 60
#: Requests of the service per STEP; the canary takes its weight's share of them.
PER_STEP = 1000
#: Histogram buckets: the stacks' latency limits (0.5 s and 1 s) among them, as docs/metrics.md requires.
BUCKETS = ("0.25", "0.5", "1", "+Inf")
#: The Stage watch's interval (hourly), the bound a stage may wait past its soak.
WATCH = timedelta(hours=1)
STACKS = ("staging", "production")


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def series(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def openmetrics(schedule: list[tuple[datetime, int]], start: int, end: int, namespace: str) -> str:
    """The service's traffic from ``start`` to ``end``: the canary at the weight the schedule gives, its
    series labelled with the stack's namespace as the operator labels its targets (rollout.model.scope)."""
    starts = [(int(at.timestamp()), weight) for at, weight in schedule]

    def weight_at(t: int) -> int:
        current = 0
        for begins, weight in starts:
            if begins <= t:
                current = weight
        return current

    families = {"requests": [], "buckets": [], "probes": []}
    for track in ("stable", "canary"):
        base = {conventions.SERVICE_LABEL: SERVICE, conventions.TRACK_LABEL: track, "namespace": namespace}
        ok = errors = count = 0
        rows_ok, rows_err, rows_bucket, rows_count, rows_sum, rows_probe = [], [], [], [], [], []
        for t in range(start, end + 1, STEP):
            share = weight_at(t) if track == "canary" else 100 - weight_at(t)
            count += PER_STEP * share // 100
            # One request in 5,000 fails (0.02 %): within budget, and at 100 %, where stable takes
            # nothing to compare with, surely under the negligible share (rollout.gates.confidence).
            errors = count // 5000
            ok = count - errors
            rows_ok.append(f"{series(conventions.HTTP_REQUESTS_TOTAL, {**base, 'code': '200'})} {ok} {t}")
            rows_err.append(f"{series(conventions.HTTP_REQUESTS_TOTAL, {**base, 'code': '500'})} {errors} {t}")
            # 90 % under 0.25 s, all under 0.5 s.
            for le, part in zip(BUCKETS, (0.9, 1.0, 1.0, 1.0)):
                rows_bucket.append((le, f"{series('http_request_duration_seconds_bucket', {**base, 'le': le})} "
                                        f"{int(count * part)} {t}"))
            rows_count.append(f"{series('http_request_duration_seconds_count', base)} {count} {t}")
            rows_sum.append(f"{series('http_request_duration_seconds_sum', base)} {count * 0.1:.1f} {t}")
            rows_probe.append(f"{series(conventions.PROBE_SUCCESS, {**base, 'instance': f'{SERVICE}-{track}'})} 1 {t}")
        families["requests"] += rows_ok + rows_err
        for le in BUCKETS:
            families["buckets"] += [row for bucket, row in rows_bucket if bucket == le]
        families["buckets"] += rows_count + rows_sum
        families["probes"] += rows_probe
    return "\n".join(["# TYPE http_requests counter", *families["requests"],
                      "# TYPE http_request_duration_seconds histogram", *families["buckets"],
                      "# TYPE probe_success gauge", *families["probes"], "# EOF"]) + "\n"


def plan_json(project: EngineProject, stack: str, at: datetime) -> dict:
    shown = project.rollout("plan", "--stack", stack, "--format", "json", "--now", iso(at))
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["services"][SERVICE]


def status_json(project: EngineProject, stack: str, at: datetime) -> dict:
    shown = project.rollout("status", "--stack", stack, "--format", "json", "--now", iso(at))
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["services"][SERVICE]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """The project, both stacks at 0 % with release R since T0 (ten days and some hours ago, at :17
    past the hour, where the hourly Stage watch runs), deployed; each stack's Prometheus."""
    workdir = tmp_path_factory.mktemp("pace")
    project = engine_project(workdir / "project")
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    t0 = (now - timedelta(days=10, hours=3)).replace(minute=17)
    for stack in STACKS:
        def change(config: dict, stack=stack) -> None:
            config["rollout:monitoring"]["install"] = False
            config["rollout:kubernetes"]["renderYamlToDirectory"] = f"build/{stack}/manifests"
            config["rollout:kubernetes"].pop("skipAwait", None)
            config["rollout:services"] = [service(config)]
            genesis = service(config)
            genesis["canary"]["image"], genesis["stable"]["image"] = R, OLD
            genesis["stable"].pop("previousImage", None)
            genesis["rollout"]["plan"] = "safe"
            genesis["rollout"]["history"] = [{"weight": 0, "startedAt": iso(t0), "release": R}]

        project.edit(stack, change)
    commit_all(project.path, "release R at 0 % in staging and production")
    schedules = {stack: plan_json(project, stack, t0) for stack in STACKS}
    prometheus = {}
    contexts = []
    try:
        for stack in STACKS:
            planned = [(parse(s["startedAt"] or s["earliestStart"]), s["weight"]) for s in schedules[stack]["stages"]]
            namespace = yaml.safe_load(project.stack_file(stack).read_text())["config"]["rollout:kubernetes"]["namespace"]
            text = openmetrics(planned, int(t0.timestamp()) - 2 * 3600, int(now.timestamp()) - STEP, namespace)
            folder = workdir / f"prometheus-{stack}"
            folder.mkdir()
            config = yaml.safe_dump({"global": {"scrape_interval": "15s", "evaluation_interval": "15s"}})
            context = start_backfilled_prometheus(text, folder, config)
            prometheus[stack] = context.__enter__()
            contexts.append(context)
        for stack in STACKS:
            project.init(stack)
            up = project.pulumi("up", "-s", stack, "--yes")
            assert up.returncode == 0, up.stdout + up.stderr
        yield project, t0, schedules, prometheus
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)


def step(project: EngineProject, stack: str, prometheus, at: datetime) -> str:
    """One step at ``at``: `rollout stage` (evidence, advance, the pack's config), commit, `pulumi up`."""
    staged = project.rollout("stage", "--stack", stack, "--service", SERVICE, "--prometheus", prometheus.url,
                             "--now", iso(at))
    assert staged.returncode == 0, staged.stdout + staged.stderr
    config = json.loads((project.path / "build" / f"policy-config-{stack}.json").read_text())
    assert config["rollout-canary-within-budget"]["evidence"]["collectedAt"] == iso(at)
    commit_all(project.path, f"{stack}: {staged.stdout.strip()}")
    up = project.pulumi("up", "-s", stack, "--yes")
    assert up.returncode == 0, up.stdout + up.stderr
    return staged.stdout


def test_a_safe_release_through_staging_and_production_completes_at_the_pace_of_its_plan(rehearsal):
    project, t0, schedules, prometheus = rehearsal
    started = time.monotonic()
    completed = {}
    for stack in STACKS:
        planned = schedules[stack]
        nominal = parse(planned["completesAt"])
        at = t0
        for stage in planned["stages"][1:]:
            # The time `plan` announces for the next stage is the time `status` allows it.
            announced = parse(plan_json(project, stack, at)["stages"][[s["weight"] for s in planned["stages"]]
                                                                      .index(stage["weight"])]["earliestStart"])
            early = status_json(project, stack, announced - timedelta(seconds=1))
            assert early["mayAdvance"] is False, early
            ready = status_json(project, stack, announced)
            assert ready["mayAdvance"] is True and parse(ready["earliestAdvance"]) <= announced, ready
            out = step(project, stack, prometheus[stack], announced)
            assert out.startswith(f"{SERVICE}: {ready['weight']}% -> {stage['weight']}% from {iso(announced)}"), out
            # The deployed state the next evidence is judged against is the backend's.
            deployed = project.outputs(stack)["rolloutState"]["services"][SERVICE]
            assert (deployed["weight"], deployed["stageStartedAt"]) == (stage["weight"], iso(announced))
            at = announced
        final = status_json(project, stack, at)
        done = parse(final["completesAt"])
        assert status_json(project, stack, done)["complete"] is True
        # Completed at the nominal time, so within it plus one watch interval per stage.
        stages = len(planned["stages"]) - 1
        assert done == nominal, (done, nominal)
        assert done <= nominal + stages * WATCH
        completed[stack] = (done - t0, nominal - t0)
        # The promote, on evidence over the final stage; afterwards nothing proposes the release again.
        evidence = project.path / "build" / f"{stack}-final.json"
        collected = project.rollout("evidence", "--stack", stack, "--prometheus", prometheus[stack].url,
                                    "--now", iso(done), "--out", str(evidence))
        assert collected.returncode == 0, collected.stderr
        promoted = project.rollout("promote", "--stack", stack, "--evidence", str(evidence), "--now", iso(done))
        assert promoted.returncode == 0, promoted.stderr
        commit_all(project.path, f"{stack}: promote")
        up = project.pulumi("up", "-s", stack, "--yes")
        assert up.returncode == 0, up.stdout + up.stderr
        after = status_json(project, stack, done + timedelta(days=1))
        assert after["mayAdvance"] is False and after["promoted"] is True
    assert completed["staging"][0] == timedelta(days=8) and completed["production"][0] == timedelta(days=10)
    for stack, (took, nominal) in completed.items():
        figures.count("pace", f"days for a safe release in {stack} (nominal {nominal.days})",
                      round(took / timedelta(days=1), 2))
    figures.count("pace", "seconds to rehearse both stacks with the engine", round(time.monotonic() - started))
