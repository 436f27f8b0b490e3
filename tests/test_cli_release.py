"""`rollout release`, `rollout promote`, and `rollout check` refusing what only a release
model can see, on stack files built here (tmp_path) with their own histories and images."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import yaml

from conftest import edit_stack
from rollout.gates.check import state_at_ref
from rollout.model.time import format_time, utc_now
from test_cli_rollout import commit_all, history, rollout, stack_text
from evidence_counts import counts, with_bounds

OLD, R, NEW, UNTESTED = (f"ghcr.io/example/genesis:{v}" for v in ("1.4.2", "1.5.0", "1.6.0", "9.9.9"))
DAY = timedelta(days=1)


def set_service(project: Path, stack: str, weights_ago, canary=R, stable=OLD, plan="safe") -> None:
    """The stack's genesis with exactly these images and this history ((weight, age) pairs)."""
    now = utc_now()

    def change(config):
        service = config["rollout:services"][0]
        service["canary"]["image"], service["stable"]["image"] = canary, stable
        service["rollout"]["plan"] = plan
        service["rollout"]["history"] = [
            {"weight": w, "startedAt": format_time(now - ago), "release": canary} for w, ago in weights_ago
        ]

    edit_stack(project, stack, change)


def _staging_at_10(project: Path) -> None:
    set_service(project, "staging", [(0, 4 * DAY), (5, 3 * DAY), (10, DAY + timedelta(hours=2))])
    set_service(project, "production", [(0, 2 * DAY)])
    commit_all(project)


def check(project: Path, stack: str = "staging", *args: str):
    return rollout(project, "check", "--stack", stack, *args)


def test_a_new_canary_image_at_10_percent_is_refused_naming_both_images(project):
    _staging_at_10(project)
    edit_stack(project, "staging", lambda c: c["rollout:services"][0]["canary"].update(image=NEW))
    result = check(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"[mandatory] rollout-new-release-new-rollout (service genesis): the canary's image changes from {R} "
            f"to {NEW} at 10%") in result.stdout


def test_a_backdated_deployed_entry_is_refused_naming_it(project):
    _staging_at_10(project)

    def backdate(config):
        entry = config["rollout:services"][0]["rollout"]["history"][2]
        entry["startedAt"] = format_time(utc_now() - 2 * DAY - timedelta(hours=1))

    edit_stack(project, "staging", backdate)
    result = check(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[mandatory] rollout-history-append-only (service genesis): history[2] differs from the deployed entry" \
        in result.stdout


def test_an_image_staging_never_ran_cannot_enter_production(project):
    _staging_at_10(project)
    set_service(project, "production", [(0, 2 * DAY)], canary=UNTESTED)
    commit_all(project, "production releases 9.9.9")
    before = stack_text(project, "production")
    refused = rollout(project, "advance", "--stack", "production")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"rollout-staging-first (service genesis): staging has not run release {UNTESTED}" in refused.stderr
    assert stack_text(project, "production") == before

    edit_stack(project, "production", lambda c: c["rollout:services"][0]["rollout"]["history"].append(
        {"weight": 5, "startedAt": format_time(utc_now()), "release": UNTESTED}))
    result = check(project, "production")
    assert result.returncode == 1
    assert f"[mandatory] rollout-staging-first (service genesis): staging has not run release {UNTESTED}" in result.stdout


def test_a_stable_image_edited_to_an_untested_image_is_refused(project):
    _staging_at_10(project)
    edit_stack(project, "staging", lambda c: c["rollout:services"][0]["stable"].update(image=UNTESTED))
    result = check(project)
    assert result.returncode == 1
    assert (f"[mandatory] rollout-stable-completed-release-only (service genesis): stable.image changes from {OLD} "
            f"to {UNTESTED}") in result.stdout


def test_release_sets_the_image_and_appends_0_in_one_edit_and_passes_the_check(project):
    _staging_at_10(project)
    before = stack_text(project, "staging")
    result = rollout(project, "release", "--stack", "staging", "--image", NEW, "--reason", "1.6.0 ships")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"genesis: release {NEW} starts at 0% from ")
    after = stack_text(project, "staging")
    comments = [line for line in before.splitlines() if line.strip().startswith("#")]
    assert all(line in after.splitlines() for line in comments), "comments kept"
    document = yaml.safe_load(after)["config"]["rollout:services"][0]
    assert document["canary"]["image"] == NEW and document["stable"]["image"] == OLD
    assert history(project, "staging")[-1]["weight"] == 0
    assert history(project, "staging")[-1]["release"] == NEW
    assert check(project).returncode == 0
    # The same image again is no release.
    again = rollout(project, "release", "--stack", "staging", "--image", NEW)
    assert again.returncode == 1 and "already the canary's release" in again.stderr
    # An unpinned image is bad input.
    latest = rollout(project, "release", "--stack", "staging", "--image", "ghcr.io/example/genesis:latest")
    assert latest.returncode == 2 and "not pinned" in latest.stderr


def test_advance_with_healthy_evidence_then_promote_after_completion(project, tmp_path):
    set_service(project, "staging", [(0, 10 * DAY), (5, 9 * DAY), (10, 8 * DAY), (25, 7 * DAY), (50, 6 * DAY),
                                     (75, 3 * DAY + timedelta(hours=1))])
    commit_all(project)
    deployed = state_at_ref("staging", project, "HEAD")
    service = deployed["services"]["genesis"]
    evidence = {
        "kind": "rollout-gate-evidence", "version": 1, "stack": "staging", "collectedAt": format_time(utc_now()),
        "deployedState": deployed, "upstreamState": None,
        "services": {"genesis": {
            "stageWeight": service["weight"], "stageStartedAt": service["stageStartedAt"], "release": R,
            "trafficSince": service["stageStartedAt"], "windowSeconds": 3600,
            "queries": {m: with_bounds(m, {"status": "ok", "value": v}) for m, v in {
                "errorRatio": 0.001, "latencyP95Seconds": 0.2, "latencyP99Seconds": 0.4,
                "consecutiveFailedHealthChecks": 0, "requests": 50_000,
                **counts(50_000, errors=0.001)}.items()}}},
    }
    file = tmp_path / "evidence.json"
    file.write_text(json.dumps(evidence))
    early = rollout(project, "promote", "--stack", "staging")
    assert early.returncode == 1 and f"not promoted: the rollout of {R} is at 75%" in early.stderr
    advanced = rollout(project, "advance", "--stack", "staging", "--evidence", str(file))
    assert advanced.returncode == 0, advanced.stderr
    assert check(project, "staging", "--evidence", str(file)).returncode == 0

    # 100 % reached two days and an hour ago: complete.
    set_service(project, "staging", [(0, 12 * DAY), (5, 11 * DAY), (10, 10 * DAY), (25, 9 * DAY), (50, 8 * DAY),
                                     (75, 7 * DAY), (100, 2 * DAY + timedelta(hours=1))])
    commit_all(project, "complete")
    before = stack_text(project, "staging")
    promoted = rollout(project, "promote", "--stack", "staging")
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.startswith(f"genesis: stable {OLD} -> {R}; canary back to 0% from ")
    after = stack_text(project, "staging").splitlines()
    assert [line.strip() for line in before.splitlines() if line not in after] == [f"image: {OLD}"]
    assert f"previousImage: {OLD}" in [line.strip() for line in after]
    service = yaml.safe_load(stack_text(project, "staging"))["config"]["rollout:services"][0]
    assert (service["stable"]["image"], service["stable"]["previousImage"]) == (R, OLD)
    assert history(project, "staging")[-1]["weight"] == 0
    # A promote is judged like an advance out of the final stage: without evidence it is refused...
    result = check(project)
    assert result.returncode == 1, result.stdout
    assert "rollout-canary-within-budget (service genesis): no gate evidence" in result.stdout
    # ... and with evidence over the 100 % stage it passes.
    final = state_at_ref("staging", project, "HEAD")
    evidence["deployedState"] = final
    evidence["collectedAt"] = format_time(utc_now())
    evidence["services"]["genesis"].update(stageWeight=100, stageStartedAt=final["services"]["genesis"]["stageStartedAt"],
                                           trafficSince=final["services"]["genesis"]["stageStartedAt"])
    file.write_text(json.dumps(evidence))
    result = check(project, "staging", "--evidence", str(file))
    assert result.returncode == 0, result.stdout
    commit_all(project, "promoted")
    # A revert to the stable image deployed before passes.
    edit_stack(project, "staging", lambda c: c["rollout:services"][0]["stable"].update(image=OLD, previousImage=R))
    assert check(project).returncode == 0


def test_status_shows_each_tracks_release_and_what_staging_completed_with_it(project):
    _staging_at_10(project)
    result = rollout(project, "status", "--stack", "production")
    assert result.returncode == 0, result.stderr
    assert f"  release: canary {R} (2 replicas), stable {OLD} (3 replicas)" in result.stdout.splitlines()
    assert f"  upstream: staging completed 10% with {R} (at 10%, soak served)" in result.stdout.splitlines()


def test_a_plan_changed_mid_rollout_keeps_its_stages_and_goes_on_from_the_current_weight(project):
    set_service(project, "dev", [(0, 2 * DAY), (5, DAY)], plan="fast")
    edit_stack(project, "dev", lambda c: c["rollout:services"][0]["rollout"].update(plan="instant"))
    status = rollout(project, "status", "--stack", "dev")
    assert status.returncode == 0, status.stderr
    assert "  next stage: 100%" in status.stdout
