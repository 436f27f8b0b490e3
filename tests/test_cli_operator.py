"""The operator's commands: status --all, plan, --now, --dry-run, flags --at, diff, and a
whole `safe` rollout rehearsed with --now, on stack files each test builds for itself."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURE, ROOT
from evidence_counts import counts, with_bounds
from test_cli_rollout import commit_all, git, rollout

T0 = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _set(project: Path, stack: str, change) -> None:
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text())
    change(document["config"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _history(entries: list[tuple[int, datetime]]):
    def change(config: dict) -> None:
        for service in config["rollout:services"]:
            service["rollout"]["plan"] = "safe"
            service["rollout"]["history"] = [{"weight": w, "startedAt": iso(t)} for w, t in entries]

    return change


@pytest.fixture
def ops(tmp_path: Path) -> Path:
    """A project of its own: staging and production (promotesFrom staging), both at 0 % since T0."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "stacks").mkdir()
    for stack in ("staging", "production"):
        shutil.copy(FIXTURE / "stacks" / f"Pulumi.{stack}.yaml", tmp_path / "stacks" / f"Pulumi.{stack}.yaml")
        _set(tmp_path, stack, _history([(0, T0)]))
    return tmp_path


def status_json(project: Path, stack: str, now: datetime) -> dict:
    result = rollout(project, "status", "--stack", stack, "--format", "json", "--now", iso(now))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]["genesis"]


# --- --now ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["tomorrow", "2031-03-03T09:00:00", "2031-13-01T00:00:00Z", ""])
@pytest.mark.parametrize("command", [
    ["status", "--stack", "staging"], ["plan", "--stack", "staging"], ["check", "--stack", "staging"],
    ["advance", "--stack", "staging"], ["rollback", "--stack", "staging", "--reason", "x"],
    ["flags", "--stack", "staging"], ["status", "--all"],
])
def test_a_bad_now_is_exit_2_with_one_line_naming_the_format(ops, command, bad):
    result = rollout(ops, *command, "--now", bad)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 2 or "ISO 8601" in result.stderr  # argparse: usage + error
    assert "ISO 8601 with a zone" in result.stderr
    assert "Traceback" not in result.stderr


def test_now_makes_status_reproducible_and_takes_any_offset(ops):
    soak_served = T0 + DAY
    before = status_json(ops, "staging", soak_served - timedelta(seconds=1))
    at = status_json(ops, "staging", soak_served)
    same = rollout(ops, "status", "--stack", "staging", "--format", "json", "--now", "2031-03-04T10:00:00+01:00")
    assert json.loads(same.stdout)["services"]["genesis"] == at
    assert before["mayAdvance"] is False and [w["kind"] for w in before["waits"]] == ["soak", "evidence"]
    assert at["mayAdvance"] is True and [w["kind"] for w in at["waits"]] == ["evidence"]
    assert at["earliestAdvance"] == iso(soak_served)


def test_now_makes_the_gates_verdict_of_check_reproducible(ops):
    commit_all(ops)
    _set(ops, "staging", _history([(0, T0), (5, T0 + DAY)]))
    early = rollout(ops, "check", "--stack", "staging", "--now", iso(T0 + DAY - timedelta(minutes=1)))
    late = rollout(ops, "check", "--stack", "staging", "--now", iso(T0 + DAY))
    assert early.returncode == 1 and late.returncode == 1  # no evidence: the canary's budget refuses both
    assert "rollout-soak-served" in early.stdout
    assert "rollout-soak-served" not in late.stdout
    assert "rollout-canary-within-budget" in late.stdout


# --- status --all ---------------------------------------------------------------------


def test_status_all_is_one_table_of_every_stack_and_service(ops):
    result = rollout(ops, "status", "--all", "--now", iso(T0 + timedelta(hours=3)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"as at {iso(T0 + timedelta(hours=3))}"
    assert lines[1].split() [:4] == ["stack", "service", "stable", "canary"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {"production", "staging"}
    assert "0%" in rows["staging"] and "1/7 safe" in rows["staging"] and "3h" in rows["staging"]
    assert f"soak until {iso(T0 + DAY)}" in rows["staging"]
    assert "ghcr.io/example/genesis:" in rows["staging"]
    # Production also waits for staging to complete the 5 % stage.
    assert "upstream (staging is at 0%" in rows["production"] and "it must complete 5% first)" in rows["production"]


def test_status_all_json_and_markdown(ops):
    now = iso(T0 + DAY)
    data = json.loads(rollout(ops, "status", "--all", "--format", "json", "--now", now).stdout)
    assert [(r["stack"], r["service"]) for r in data["rows"]] == [("production", "genesis"), ("staging", "genesis")]
    assert data["now"] == now and data["broken"] == {}
    markdown = rollout(ops, "status", "--all", "--format", "markdown", "--now", now).stdout.splitlines()
    assert markdown[0].startswith("| stack | service | stable | canary | weight |") and markdown[1].startswith("|---|")
    assert len(markdown) == 4


def test_status_all_names_a_broken_stack_and_still_shows_the_others(ops):
    (ops / "stacks" / "Pulumi.broken.yaml").write_text("config:\n  rollout:target: moon\n")
    result = rollout(ops, "status", "--all", "--now", iso(T0))
    assert result.returncode == 2
    assert "Pulumi.broken.yaml" in result.stderr and "staging" in result.stdout


def test_status_needs_a_stack_or_all(ops):
    result = rollout(ops, "status")
    assert result.returncode == 2 and "--all" in result.stderr


def test_an_unknown_stack_lists_the_stacks_that_exist(ops):
    result = rollout(ops, "status", "--stack", "stagin")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("stacks: production, staging")


# --- plan ---------------------------------------------------------------------------------


def test_plan_shows_the_history_the_earliest_starts_and_the_completion(ops):
    _set(ops, "staging", _history([(0, T0), (5, T0 + DAY), (10, T0 + 2 * DAY)]))
    now = T0 + 2 * DAY + timedelta(hours=6)
    data = json.loads(rollout(ops, "plan", "--stack", "staging", "--format", "json", "--now", iso(now)).stdout)
    stages = data["services"]["genesis"]["stages"]
    assert [s["weight"] for s in stages] == [0, 5, 10, 25, 50, 75, 100]
    assert [s["status"] for s in stages] == ["done", "done", "current", "planned", "planned", "planned", "planned"]
    assert [s["startedAt"] for s in stages[:3]] == [iso(T0), iso(T0 + DAY), iso(T0 + 2 * DAY)]
    assert [s["earliestStart"] for s in stages[3:]] == [iso(T0 + d * DAY) for d in (3, 4, 5, 6)]
    # Six one-day stages, then 48 h at 100 %.
    assert data["services"]["genesis"]["completesAt"] == iso(T0 + 8 * DAY)
    # A late advance moves every later stage: asked two days late, the soaks run from then.
    late = T0 + 5 * DAY
    data = json.loads(rollout(ops, "plan", "--stack", "staging", "--format", "json", "--now", iso(late)).stdout)
    assert data["services"]["genesis"]["stages"][3]["earliestStart"] == iso(late)
    assert data["services"]["genesis"]["completesAt"] == iso(late + 3 * DAY + 2 * DAY)


def test_plan_of_a_stack_with_promotes_from_waits_for_the_upstream(ops):
    _set(ops, "staging", _history([(0, T0), (5, T0 + DAY)]))
    _set(ops, "production", _history([(0, T0 + DAY)]))
    now = T0 + DAY
    data = json.loads(rollout(ops, "plan", "--stack", "production", "--format", "json", "--now", iso(now)).stdout)
    service = data["services"]["genesis"]
    assert service["upstream"]["stack"] == "staging"
    by_weight = {s["weight"]: s for s in service["stages"]}
    # Staging completes 5 % at T0+2d; production's own soak of 0 % ends then too.
    assert by_weight[5]["upstreamCompletesAt"] == iso(T0 + 2 * DAY)
    assert by_weight[5]["earliestStart"] == iso(T0 + 2 * DAY)
    # 100 % waits for staging's 48 h at 100 %.
    assert by_weight[100]["earliestStart"] == by_weight[100]["upstreamCompletesAt"]
    text = rollout(ops, "plan", "--stack", "production", "--now", iso(now)).stdout
    assert "staging completes" in text.splitlines()[1]


def test_plan_as_a_mermaid_gantt_chart(ops):
    _set(ops, "staging", _history([(0, T0), (5, T0 + DAY)]))
    chart = rollout(ops, "plan", "--stack", "production", "--format", "mermaid", "--now", iso(T0 + DAY)).stdout
    lines = chart.splitlines()
    assert lines[0] == "gantt" and "dateFormat YYYY-MM-DD HH:mm" in chart
    assert "section genesis on staging" in chart and "section genesis on production" in chart
    assert "    0 % :done, u0s0, 2031-03-03 09:00, 1440m" in lines
    assert "    5 % :active, u0s1, 2031-03-04 09:00, 1440m" in lines
    assert "    100 % :s0s6, " in chart and chart.rstrip().endswith("2880m")


# --- --dry-run ------------------------------------------------------------------------


def test_advance_dry_run_prints_the_entry_and_the_verdict_and_writes_nothing(ops):
    path = ops / "stacks" / "Pulumi.staging.yaml"
    before = path.read_bytes()
    early = rollout(ops, "advance", "--stack", "staging", "--dry-run", "--reason", "day 2", "--now", iso(T0 + DAY / 2))
    # Exit as the advance itself would: refused (1), and the file as it was.
    assert early.returncode == 1, early.stderr
    assert path.read_bytes() == before
    assert "genesis: 0% -> 5%" in early.stdout and "    - weight: 5" in early.stdout
    assert f'      startedAt: "{iso(T0 + DAY / 2)}"' in early.stdout and '      reason: "day 2"' in early.stdout
    assert "verdict: refused: 1 gate violation(s)" in early.stdout and "rollout-soak-served" in early.stderr
    served = rollout(ops, "advance", "--stack", "staging", "--dry-run", "--now", iso(T0 + DAY))
    assert served.returncode == 0, served.stderr
    assert "verdict: gates pass, but for the canary's budget (no evidence)" in served.stdout
    assert path.read_bytes() == before


def test_rollback_dry_run_writes_nothing(ops):
    path = ops / "stacks" / "Pulumi.staging.yaml"
    before = path.read_bytes()
    result = rollout(ops, "rollback", "--stack", "staging", "--reason", "errors", "--dry-run", "--now", iso(T0 + DAY))
    assert result.returncode == 0, result.stderr
    assert "verdict: a rollback is never refused" in result.stdout and "    - weight: 0" in result.stdout
    assert path.read_bytes() == before


def test_advance_now_records_that_time(ops):
    result = rollout(ops, "advance", "--stack", "staging", "--now", iso(T0 + DAY + timedelta(minutes=5)))
    assert result.returncode == 0, result.stderr
    history = yaml.safe_load((ops / "stacks" / "Pulumi.staging.yaml").read_text())["config"]["rollout:services"][0]
    last = history["rollout"]["history"][-1]
    assert (last["weight"], last["startedAt"]) == (5, iso(T0 + DAY + timedelta(minutes=5)))


# --- the rehearsal --------------------------------------------------------------------


def test_a_whole_safe_rollout_rehearsed_with_now_and_no_edit_of_started_at(ops):
    """Staging then production, each stage advanced at its earliest time: 0 -> 100 and complete."""
    weights = [0, 5, 10, 25, 50, 75, 100]
    now = T0
    staging_at = {0: T0}
    for weight in weights[1:]:
        st = status_json(ops, "staging", now)
        assert not st["mayAdvance"] or now >= datetime.fromisoformat(st["earliestAdvance"].replace("Z", "+00:00"))
        # One second early the soak refuses (dry run); at the earliest advance the gates pass.
        early = datetime.fromisoformat(st["earliestAdvance"].replace("Z", "+00:00")) - timedelta(seconds=1)
        assert "rollout-soak-served" in rollout(ops, "advance", "--stack", "staging", "--dry-run", "--now", iso(early)).stderr
        now = datetime.fromisoformat(st["earliestAdvance"].replace("Z", "+00:00"))
        assert status_json(ops, "staging", now)["mayAdvance"]
        result = rollout(ops, "advance", "--stack", "staging", "--now", iso(now))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"genesis: {weights[weights.index(weight) - 1]}% -> {weight}% from {iso(now)}")
        staging_at[weight] = now
    assert now == T0 + 6 * DAY
    final = status_json(ops, "staging", now)
    assert final["weight"] == 100 and not final["complete"] and final["completesAt"] == iso(T0 + 8 * DAY)
    assert status_json(ops, "staging", T0 + 8 * DAY)["complete"]

    # Production, asked while staging is at 100 %: its next stage waits for staging's final soak.
    waiting = status_json(ops, "production", T0 + 7 * DAY)
    assert [w["kind"] for w in waiting["waits"]] == ["evidence"]  # 5 %: staging completed it long ago
    # Production follows once staging is complete: a stage a day, each at its earliest time.
    prod_now = T0 + 8 * DAY
    for weight in weights[1:]:
        st = status_json(ops, "production", prod_now)
        if not st["mayAdvance"]:
            prod_now = datetime.fromisoformat(st["earliestAdvance"].replace("Z", "+00:00"))
            st = status_json(ops, "production", prod_now)
        assert st["mayAdvance"], st
        result = rollout(ops, "advance", "--stack", "production", "--now", iso(prod_now))
        assert result.returncode == 0, result.stderr
    assert prod_now == T0 + 13 * DAY
    assert status_json(ops, "production", prod_now)["weight"] == 100
    done_at = T0 + 15 * DAY
    assert not status_json(ops, "production", done_at - timedelta(seconds=1))["complete"]
    assert status_json(ops, "production", done_at)["complete"]
    table = rollout(ops, "status", "--all", "--now", iso(done_at)).stdout
    assert table.count(" complete") == 2


# --- flags --at -------------------------------------------------------------------------


def test_flags_at_gives_the_progressive_flags_value_on_a_given_day(ops):
    start = T0

    def progressive(config: dict) -> None:
        config["rollout:flags"]["rehearsed"] = {
            "strategy": "progressive",
            "start": iso(start),
            "steps": [{"after": "0s", "percentage": 0}, {"after": "2d", "percentage": 100}],
        }

    _set(ops, "staging", progressive)
    before = rollout(ops, "flags", "--stack", "staging", "--at", iso(start + DAY))
    after = rollout(ops, "flags", "--stack", "staging", "--at", iso(start + 2 * DAY))
    assert before.returncode == 0, before.stderr
    assert "FLAG_REHEARSED=false" in before.stdout.splitlines()
    assert "FLAG_REHEARSED=true" in after.stdout.splitlines()
    same = rollout(ops, "flags", "--stack", "staging", "--now", iso(start + 2 * DAY))
    assert same.stdout == after.stdout


# --- diff ---------------------------------------------------------------------------------


PAST = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def test_diff_shows_the_rendered_change_per_file_and_exits_1(ops):
    _set(ops, "staging", _history([(0, PAST)]))
    commit_all(ops)
    unchanged = rollout(ops, "diff", "--stack", "staging")
    assert unchanged.returncode == 0 and unchanged.stdout == ""
    _set(ops, "staging", _history([(0, PAST), (5, PAST + DAY)]))
    result = rollout(ops, "diff", "--stack", "staging")
    assert result.returncode == 1, result.stderr
    assert "--- a/kubernetes/genesis-httproute.yaml\n+++ b/kubernetes/genesis-httproute.yaml\n" in result.stdout
    assert "-      weight: 0\n+      weight: 5\n" in result.stdout
    base = git(ops, "rev-parse", "HEAD").strip()
    commit_all(ops, "advanced")
    assert rollout(ops, "diff", "--stack", "staging", "--base", base).stdout == result.stdout


def test_diff_of_an_unknown_ref_is_bad_input(ops):
    commit_all(ops)
    result = rollout(ops, "diff", "--stack", "staging", "--base", "no-such-ref")
    assert result.returncode == 2 and "--base no-such-ref" in result.stderr


def test_diff_of_a_stack_new_since_the_ref_adds_every_file(ops):
    _set(ops, "staging", _history([(0, PAST)]))
    commit_all(ops)
    shutil.copy(ops / "stacks" / "Pulumi.staging.yaml", ops / "stacks" / "Pulumi.qa.yaml")
    result = rollout(ops, "diff", "--stack", "qa")
    assert result.returncode == 1
    assert "--- /dev/null\n+++ b/flags/flags.json\n" in result.stdout


def test_diff_renders_the_base_with_the_code_committed_there(ops):
    """A change of the code shows in the diff: the base's command line (a package since the
    layers, rollout/cli/) renders the base, the installed code the working tree."""
    _set(ops, "staging", _history([(0, PAST)]))
    for package in ("rollout", "alerts", "dashboards"):
        shutil.copytree(ROOT / package, ops / package, ignore=shutil.ignore_patterns("__pycache__"))
    conventions = ops / "rollout" / "model" / "conventions.py"
    conventions.write_text(conventions.read_text().replace('"Generated by rollout from', '"Generated by the base from', 1))
    commit_all(ops)
    result = rollout(ops, "diff", "--stack", "staging")
    assert result.returncode == 1, result.stderr
    assert "-# Generated by the base from stacks/Pulumi.staging.yaml; do not edit.\n" in result.stdout
    assert "+# Generated by rollout from stacks/Pulumi.staging.yaml; do not edit.\n" in result.stdout


# --- check's warnings ---------------------------------------------------------------------


def test_check_warns_of_a_relative_runbook_url_and_no_hostnames_outside_dev(ops):
    def relative(config: dict) -> None:
        config["rollout:alerting"].pop("runbookBaseUrl", None)
        for service in config["rollout:services"]:
            service.pop("route", None)

    _set(ops, "staging", relative)
    commit_all(ops)
    result = rollout(ops, "check", "--stack", "staging", "--now", iso(T0))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: stacks/Pulumi.staging.yaml: rollout:alerting.runbookBaseUrl is 'docs/runbooks'" in result.stdout
    assert "route.hostnames is empty" in result.stdout


def test_status_with_evidence_says_each_traffic_measures_verdict_with_its_numbers(ops, tmp_path):
    # staging at 5 % since a day after T0; the evidence: a canary 90 times worse than stable in errors,
    # under the budget; its latency alike stable's.
    _set(ops, "staging", _history([(0, T0), (5, T0 + DAY)]))
    now = T0 + 3 * DAY
    state = status_state(ops, now)
    service = state["services"]["genesis"]
    queries = {m: with_bounds(m, {"status": "ok", "value": v}) for m, v in {
        "requests": 14_200, "errorRatio": 0.009, "latencyP95Seconds": 0.2, "latencyP99Seconds": 0.4,
        "consecutiveFailedHealthChecks": 0, **counts(14_200, errors=0.009, stable_times=270_000 / 14_200),
        "stableErrors": 27}.items()}
    evidence = {"kind": "rollout-gate-evidence", "version": 1, "stack": "staging", "collectedAt": iso(now),
                "deployedState": state, "upstreamState": None,
                "services": {"genesis": {"stageWeight": 5, "stageStartedAt": service["stageStartedAt"],
                                         "release": service["release"], "trafficSince": service["stageStartedAt"],
                                         "windowSeconds": 3600, "queries": queries}}}
    file = tmp_path / "evidence.json"
    file.write_text(json.dumps(evidence))
    text = rollout(ops, "status", "--stack", "staging", "--evidence", str(file), "--now", iso(now))
    assert text.returncode == 0, text.stderr
    assert ("  fail: error ratio: canary 0.9 % [0.75 %, 1.1 %] over 14,200 requests vs stable 0.01 % over 270,000: "
            "worse than stable beyond tolerance 2×") in text.stdout
    assert "  pass: P95 latency (slower than 0.5 s): canary 0.099 % [" in text.stdout
    assert "  pass: P99 latency (slower than 1 s): canary 0 % [" in text.stdout
    as_json = rollout(ops, "status", "--stack", "staging", "--evidence", str(file), "--now", iso(now), "--format", "json")
    verdicts = json.loads(as_json.stdout)["services"]["genesis"]["verdicts"]
    assert [(v["measure"], v["verdict"]) for v in verdicts] == [
        ("errorRatio", "fail"), ("latencyP95", "pass"), ("latencyP99", "pass")]
    assert verdicts[0]["canaryInterval"]["low"] > 2 * verdicts[0]["stableInterval"]["high"]
    refused = rollout(ops, "status", "--all", "--evidence", str(file))
    assert refused.returncode == 2 and "leave out --stack, --service and --evidence" in refused.stderr


def status_state(project: Path, now: datetime) -> dict:
    """The staging stack's rollout state as the stack file says, at ``now``."""
    from rollout.load.clock import rehearse
    from rollout.load.stack import load_stack
    from rollout.model.state import rollout_state

    rehearse(now)  # as the command's --now does: the history is not in the future
    try:
        return rollout_state(load_stack("staging", project), "staging", now)
    finally:
        rehearse(None)
