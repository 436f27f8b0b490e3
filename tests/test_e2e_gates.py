"""End to end: a real Prometheus holds a day of canary traffic; the gates judge it.

Synthetic series for two services of the staging stack are backfilled with
``promtool tsdb create-blocks-from openmetrics``: ``genesis`` has a healthy
canary over its current 10 % stage, ``exodus`` an unhealthy one (3 % errors,
slow, a run of failed health checks). Each service's other track and the
stage before the current one look the opposite way, so a query that read the
wrong track or the wrong window would give the wrong verdict. Prometheus
starts on those blocks with the stack's own rule groups (alerts.catalogue),
then the CLI runs as a user would: ``rollout evidence``, ``rollout advance``,
``rollout check``, ``rollout rollback``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from alerts.catalogue import rule_groups
from conftest import edit_stack
from rollout.model import conventions
from rollout.load.stack import load_stack
from servers import start_backfilled_prometheus
from test_cli_rollout import added_lines, commit_all, rollout, stack_text

pytestmark = pytest.mark.e2e

STEP = 60  # seconds between synthetic samples (one scrape and one probe a minute)
BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")


@dataclass(frozen=True)
class Profile:
    """Per STEP: requests, 5xx among them, cumulative bucket counts, and probe results."""

    requests: int
    errors: int
    buckets: tuple[int, ...]  # cumulative, one per BUCKETS entry
    #: Lengths of runs of failed probes, placed one after another from the profile's start.
    failed_runs: tuple[int, ...]
    #: Requests arrive in one STEP of this many (a quiet service: a few requests an hour).
    every: int = 1


# P95 0.23 s, P99 0.44 s, 0.33 % errors, two failed probes in a row at most.
HEALTHY = Profile(300, 1, (100, 250, 290, 299, 300, 300, 300), (1, 2))
# P95 2.4 s, P99 beyond the last finite bucket, 3 % errors, eight failed probes in a row.
UNHEALTHY = Profile(300, 9, (50, 100, 150, 200, 240, 290, 300), (3, 8))
# Before the stage: a catastrophe that must not leak into the stage's window.
BROKEN = Profile(300, 150, (0, 0, 0, 0, 0, 10, 300), (12,))


def series(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


#: The namespace of the reference project's staging stack: its series carry it (rollout.model.scope).
STAGING_NAMESPACE = "rollout-staging"


def openmetrics(
    services: dict[str, dict[str, tuple[Profile, Profile]]], start: int, stage: int, end: int,
    namespace: str | None = STAGING_NAMESPACE, others: dict[str, dict[str, dict[str, tuple[Profile, Profile]]]] | None = None,
) -> str:
    """OpenMetrics text: per service and track, (profile before the stage, profile in it),
    labelled with the stack's namespace (None: no namespace label, a Docker stack's);
    ``others`` adds the services of other namespaces."""
    times = list(range(start, end + 1, STEP))
    requests, buckets, probes = [], [], []
    every = [(namespace, service, tracks) for service, tracks in sorted(services.items())]
    every += [(ns, service, tracks) for ns, more in sorted((others or {}).items()) for service, tracks in sorted(more.items())]
    for space, service, tracks in every:
        for track, (before, during) in sorted(tracks.items()):
            base = {conventions.SERVICE_LABEL: service, conventions.TRACK_LABEL: track}
            if space is not None:
                base["namespace"] = space
            totals = {"200": 0, "500": 0}
            cumulative = [0] * len(BUCKETS)
            total_sum = 0.0
            rows_ok, rows_err, rows_bucket, rows_count, rows_sum, rows_probe = [], [], [], [], [], []
            failing = {
                phase: _failure_slots(profile, first)
                for phase, profile, first in (("before", before, start), ("during", during, stage))
            }
            for t in times:
                phase, profile = ("before", before) if t < stage else ("during", during)
                if (t - start) // STEP % profile.every == 0:
                    totals["200"] += profile.requests - profile.errors
                    totals["500"] += profile.errors
                    cumulative = [c + b for c, b in zip(cumulative, profile.buckets)]
                    total_sum += profile.requests * 0.2
                rows_ok.append(f"{series(conventions.HTTP_REQUESTS_TOTAL, {**base, 'code': '200'})} {totals['200']} {t}")
                rows_err.append(f"{series(conventions.HTTP_REQUESTS_TOTAL, {**base, 'code': '500'})} {totals['500']} {t}")
                for index, le in enumerate(BUCKETS):
                    rows_bucket.append((le, f"{series('http_request_duration_seconds_bucket', {**base, 'le': le})} {cumulative[index]} {t}"))
                rows_count.append(f"{series('http_request_duration_seconds_count', base)} {cumulative[-1]} {t}")
                rows_sum.append(f"{series('http_request_duration_seconds_sum', base)} {total_sum:.1f} {t}")
                probe = 0 if t in failing[phase] else 1
                rows_probe.append(f"{series(conventions.PROBE_SUCCESS, {**base, 'instance': f'{service}-{track}'})} {probe} {t}")
            requests += rows_ok + rows_err
            for le in BUCKETS:
                buckets += [row for bucket_le, row in rows_bucket if bucket_le == le]
            buckets += rows_count + rows_sum
            probes += rows_probe
    return "\n".join(
        ["# TYPE http_requests counter", *requests,
         "# TYPE http_request_duration_seconds histogram", *buckets,
         "# TYPE probe_success gauge", *probes,
         "# EOF"]
    ) + "\n"


def _failure_slots(profile: Profile, first: int) -> set[int]:
    """Timestamps of failed probes: each run an hour after the one before."""
    slots = set()
    for index, length in enumerate(profile.failed_runs):
        begin = first + (index + 1) * 3600
        slots |= {begin + k * STEP for k in range(length)}
    return slots


def add_exodus(config: dict) -> None:
    """A second service, exodus, at the same stage as genesis."""
    genesis = config["rollout:services"][0]
    config["rollout:services"].append({**json.loads(json.dumps(genesis)), "name": "exodus"})


@pytest.fixture
def canaries(project: Path, tmp_path: Path):
    """The project with genesis and exodus 26 h into their 10 % stage, committed, and a
    Prometheus holding their traffic since two hours before that stage."""
    now = int(time.time()) // STEP * STEP
    stage = now - 26 * 3600
    at = lambda seconds: datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731

    def history(config: dict) -> None:
        config["rollout:services"][0]["rollout"]["history"] = [
            {"weight": 0, "startedAt": at(stage - 4 * 86400)},
            {"weight": 5, "startedAt": at(stage - 2 * 86400)},
            {"weight": 10, "startedAt": at(stage)},
        ]
        add_exodus(config)

    edit_stack(project, "staging", history)
    commit_all(project)

    text = openmetrics(
        {
            "genesis": {"canary": (BROKEN, HEALTHY), "stable": (UNHEALTHY, UNHEALTHY)},
            "exodus": {"canary": (HEALTHY, UNHEALTHY), "stable": (HEALTHY, HEALTHY)},
        },
        start=stage - 2 * 3600,
        stage=stage,
        end=now - STEP,
    )
    config = load_stack("staging", project)
    rules = {"rules/rollout.yaml": yaml.safe_dump({"groups": rule_groups(config)}, sort_keys=False)}
    prometheus_yml = yaml.safe_dump({
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": ["rules/rollout.yaml"],
    })
    with start_backfilled_prometheus(text, tmp_path, prometheus_yml, rules=rules) as prometheus:
        yield project, prometheus, tmp_path


def test_the_healthy_canary_advances_the_unhealthy_one_is_refused_and_both_roll_back(canaries):
    project, prometheus, tmp_path = canaries
    evidence_file = tmp_path / "evidence.json"

    collected = rollout(project, "evidence", "--stack", "staging", "--prometheus", prometheus.url, "--out", str(evidence_file))
    assert collected.returncode == 0, collected.stderr
    evidence = json.loads(evidence_file.read_text())
    healthy = {m: q["value"] for m, q in evidence["services"]["genesis"]["queries"].items()}
    unhealthy = {m: q["value"] for m, q in evidence["services"]["exodus"]["queries"].items()}
    # The canary's own series over the stage only: exact where Prometheus is exact,
    # within increase()'s extrapolation at the window's edges otherwise.
    assert healthy["consecutiveFailedHealthChecks"] == 2
    assert unhealthy["consecutiveFailedHealthChecks"] == 8
    assert healthy["errorRatio"] == pytest.approx(1 / 300, rel=0.01)
    assert unhealthy["errorRatio"] == pytest.approx(9 / 300, rel=0.01)
    assert healthy["requests"] == pytest.approx(26 * 60 * 300, rel=0.01)
    assert healthy["latencyP95Seconds"] == pytest.approx(0.1 + 0.15 * (285 - 250) / 40, rel=0.01)
    assert healthy["latencyP99Seconds"] == pytest.approx(0.25 + 0.25 * (297 - 290) / 9, rel=0.01)
    assert unhealthy["latencyP95Seconds"] > 1 and unhealthy["latencyP99Seconds"] == pytest.approx(2.5)

    before = stack_text(project, "staging")
    refused = rollout(project, "advance", "--stack", "staging", "--service", "exodus", "--evidence", str(evidence_file))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    # The error ratio and the shares slower than the P95 (0.5 s) and P99 (1 s) limits, with their bounds.
    # (Counts are increase()'s, extrapolated at the window's edges: about 468,000 requests each.)
    for words, verdict in (("error ratio: canary 3 % [2.95 %, 3.05 %] over 46", "vs stable 0.33 % over 46"),
                           ("P95 latency (slower than 0.5 s): canary 33.3 % [33.2 %, 33.5 %]", "above the budget of 5 % (fail)"),
                           ("P99 latency (slower than 1 s): canary 20 % [19.9 %, 20.1 %]", "above the budget of 1 % (fail)"),
                           ("longest run of failed health checks over the 10% stage is 8", "")):
        line = line_of(refused.stderr, f"[mandatory] rollout-canary-within-budget (service exodus): {words}")
        assert verdict in line, line
    assert stack_text(project, "staging") == before

    advanced = rollout(project, "advance", "--stack", "staging", "--service", "genesis", "--evidence", str(evidence_file))
    assert advanced.returncode == 0, advanced.stderr
    assert advanced.stdout.startswith("genesis: 10% -> 25% from ")
    assert added_lines(before, stack_text(project, "staging"))[0].endswith("- weight: 25")

    checked = rollout(project, "check", "--stack", "staging", "--evidence", str(evidence_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "advancing: genesis (deployed: the evidence (stacks/Pulumi.staging.yaml at HEAD)); gates pass" in checked.stdout

    # The same for exodus, advanced by hand past the gate: the check refuses it.
    assert rollout(project, "advance", "--stack", "staging", "--service", "exodus").returncode == 0
    caught = rollout(project, "check", "--stack", "staging", "--evidence", str(evidence_file))
    assert caught.returncode == 1
    assert "[mandatory] rollout-canary-within-budget (service exodus): error ratio" in caught.stdout
    assert "(service genesis)" not in caught.stdout

    for service in ("exodus", "genesis"):
        rolled = rollout(project, "rollback", "--stack", "staging", "--service", service, "--reason", "e2e rollback")
        assert rolled.returncode == 0, rolled.stderr
    assert rollout(project, "check", "--stack", "staging", "--evidence", str(evidence_file)).returncode == 0
    assert rollout(project, "check", "--stack", "staging").returncode == 0
    assert [s.rollout.weight for s in load_stack("staging", project).services] == [0, 0]


def line_of(output: str, prefix: str) -> str:
    """The line of ``output`` that starts with ``prefix``."""
    lines = [line for line in output.splitlines() if line.startswith(prefix)]
    assert lines, f"no line starts with {prefix!r} in:\n{output}"
    return lines[0]


# Against the stable track over the same window (the baseline): 10 000 requests a minute at 0.01 %
# errors; a canary of 1 000 a minute failing none, or 0.9 % (90 times stable, under the 1 % budget);
# and a quiet service, its canary taking one request every 10 minutes and its stable track nine.
FAST = (400, 900, 990, 999, 1000, 1000, 1000)  # 0.1 % slower than 0.5 s, none slower than 1 s
BUSY_STABLE = Profile(10_000, 1, tuple(10 * b for b in FAST), (1,))
BUSY_CANARY = Profile(1000, 0, FAST, (1,))
WORSE_THAN_STABLE = Profile(1000, 9, FAST, (1,))
QUIET_CANARY = Profile(1, 0, (1, 1, 1, 1, 1, 1, 1), (1,), every=10)
QUIET_STABLE = Profile(9, 0, (9, 9, 9, 9, 9, 9, 9), (1,), every=10)


@pytest.fixture
def baselines(project: Path, tmp_path: Path):
    """The project with genesis, exodus and numbers 26 h into their 10 % stage, and a Prometheus
    holding both tracks of each: a busy healthy canary, one 90 times worse than stable, a quiet one."""
    now = int(time.time()) // STEP * STEP
    stage = now - 26 * 3600
    at = lambda seconds: datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731

    def history(config: dict) -> None:
        config["rollout:services"][0]["rollout"]["history"] = [
            {"weight": 0, "startedAt": at(stage - 4 * 86400)},
            {"weight": 5, "startedAt": at(stage - 2 * 86400)},
            {"weight": 10, "startedAt": at(stage)},
        ]
        genesis = config["rollout:services"][0]
        for name in ("exodus", "numbers"):
            config["rollout:services"].append({**json.loads(json.dumps(genesis)), "name": name})

    edit_stack(project, "staging", history)
    commit_all(project)
    text = openmetrics(
        {
            "genesis": {"canary": (BUSY_CANARY, BUSY_CANARY), "stable": (BUSY_STABLE, BUSY_STABLE)},
            "exodus": {"canary": (WORSE_THAN_STABLE, WORSE_THAN_STABLE), "stable": (BUSY_STABLE, BUSY_STABLE)},
            "numbers": {"canary": (QUIET_CANARY, QUIET_CANARY), "stable": (QUIET_STABLE, QUIET_STABLE)},
        },
        start=stage - 2 * 3600,
        stage=stage,
        end=now - STEP,
    )
    prometheus_yml = yaml.safe_dump({"global": {"scrape_interval": "15s", "evaluation_interval": "15s"}})
    with start_backfilled_prometheus(text, tmp_path, prometheus_yml) as prometheus:
        yield project, prometheus, tmp_path


def test_judged_against_stable_a_90_times_worse_canary_is_refused_a_quiet_one_holds_a_busy_one_passes(baselines):
    project, prometheus, tmp_path = baselines
    evidence_file = tmp_path / "evidence.json"
    collected = rollout(project, "evidence", "--stack", "staging", "--prometheus", prometheus.url, "--out", str(evidence_file))
    assert collected.returncode == 0, collected.stderr
    queries = json.loads(evidence_file.read_text())["services"]["exodus"]["queries"]
    # Both tracks over the same window: the canary's 9 errors a minute, the stable track's 1.
    assert queries["errors"]["value"] == pytest.approx(9 * 26 * 60, rel=0.01)
    assert queries["stableErrors"]["value"] == pytest.approx(26 * 60, rel=0.01)
    assert queries["stableRequests"]["value"] == pytest.approx(10_000 * 26 * 60, rel=0.01)
    before = stack_text(project, "staging")

    worse = rollout(project, "advance", "--stack", "staging", "--service", "exodus", "--evidence", str(evidence_file))
    assert worse.returncode == 1, worse.stdout + worse.stderr
    line = line_of(worse.stderr, "[mandatory] rollout-canary-within-budget (service exodus): error ratio: canary 0.9 % "
                   "[0.89 %, 0.91 %] over 1,5")
    assert " requests vs stable 0.01 % over 15," in line, line
    assert line.endswith(": worse than stable beyond tolerance 2× (fail)"), line
    assert "P95 latency" not in worse.stderr and "P99 latency" not in worse.stderr, "latency is as stable's"

    quiet = rollout(project, "advance", "--stack", "staging", "--service", "numbers", "--evidence", str(evidence_file))
    assert quiet.returncode == 1, quiet.stdout + quiet.stderr
    line = line_of(quiet.stderr, "[mandatory] rollout-canary-within-budget (service numbers): error ratio: canary 0 % "
                   "[0 %, 2.")
    assert "vs stable 0 % over 1," in line, line
    assert ": cannot yet show it within the budget of 1 % (its upper bound 2." in line, line
    assert "(inconclusive: the stage holds and keeps soaking; no rollback)" in line
    assert "(fail)" not in quiet.stderr and "rollout-soak-served" not in quiet.stderr, quiet.stderr
    assert "rollout: advance held (inconclusive: the stage keeps soaking) by the gates" in quiet.stderr
    assert "rollout: advance refused by the gates" in worse.stderr
    assert stack_text(project, "staging") == before

    busy = rollout(project, "advance", "--stack", "staging", "--service", "genesis", "--evidence", str(evidence_file))
    assert busy.returncode == 0, busy.stdout + busy.stderr
    assert busy.stdout.startswith("genesis: 10% -> 25% from ")


def test_the_stacks_recording_rules_see_the_same_canaries(canaries):
    """The rollback-trigger SLIs (recording rules) and the gate evidence agree: the
    same threshold in the config judges both."""
    project, prometheus, _ = canaries
    config = load_stack("staging", project)
    deadline = time.monotonic() + 60
    ratios: dict[str, float] = {}
    while time.monotonic() < deadline and len(ratios) < 2:
        # Rules evaluate from Prometheus' start on, over the last 5 minutes of the backfill.
        result = prometheus.query(f'{conventions.ERROR_RATIO}{{{conventions.TRACK_LABEL}="{conventions.CANARY}"}}')
        ratios = {r["metric"][conventions.SERVICE_LABEL]: float(r["value"][1]) for r in result}
        time.sleep(0.5)
    assert set(ratios) == {"genesis", "exodus"}, "the SLI recording rules never evaluated"
    assert ratios["genesis"] <= config.canary.max_error_ratio < ratios["exodus"]
