"""A whole release through a generated fleet: 12 stacks in three waves, release groups of two
and three services, a fleet-wide limit, weekend freeze windows.

The waves open in order, the limit holds, a freeze refuses and an override passes with its
entry, a rollback in the canary region halts the regions downstream until a resume, and the
release groups move in lockstep. Each refusal names its gate in ``rollout advance`` and in
``rollout check`` (the pack judges the same under the real engine: tests/test_engine_fleet.py).
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from engine import commit_all, git
from fleetgen import build_fleet, image, region_names
from rollout.cli.app import main
from rollout.gates.judge import FLEET_HALT, FLEET_LIMIT, FREEZE_WINDOW, RELEASE_GROUP_IN_STEP, STAGING_FIRST

pytestmark = pytest.mark.slow

R = "2.0.0"
MONDAY = "2031-03-03"
REGIONS = region_names(10)


def run(project: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--project", str(project), *args])
    return code, out.getvalue(), err.getvalue()


def ok(project: Path, *args: str) -> str:
    """A command that passes; an edit is then deployed (committed: the gates judge against git HEAD here)."""
    code, out, err = run(project, *args)
    assert code == 0, out + err
    if args[0] in ("release", "promote", "advance", "rollback", "override", "resume") and "--dry-run" not in args:
        commit_all(project, " ".join(args[:3]))
    return out


def refused(project: Path, gate: str, *args: str) -> str:
    code, out, err = run(project, *args)
    assert code == 1 and gate in out + err, out + err
    return out + err


def history(project: Path, stack: str, service: str) -> list[dict]:
    document = yaml.safe_load((project / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return next(s for s in document["config"]["rollout:services"] if s["name"] == service)["rollout"]["history"]


def checked(project: Path, stack: str, gate: str, now: str) -> str:
    """``rollout check`` of an advance of ``stack`` written by hand (the deployed state: git HEAD)."""
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    before = path.read_text()
    document = yaml.safe_load(before)
    for service in document["config"]["rollout:services"]:
        weight = service["rollout"]["history"][-1]["weight"]
        service["rollout"]["history"].append({"weight": 50 if weight == 0 else 100, "startedAt": now})
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        code, out, err = run(project, "check", "--stack", stack, "--now", now)
    finally:
        path.write_text(before)
    assert code == 1 and f"[mandatory] {gate} (service " in out, out + err
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("fleet")
    stacks = build_fleet(project, regions=10, start=f"{MONDAY}T06:00:00Z")
    assert len(stacks) == 12
    git(project, "init", "--quiet")
    commit_all(project, "the fleet at 1.0.0")
    return project


def test_the_fleet_is_three_waves_found_from_the_files(fleet):
    listed = json.loads(ok(fleet, "stacks", "--format", "json"))
    assert listed["waves"] == [["staging"], ["prod-canary"], REGIONS]
    assert listed["stacks"][2] == {"stack": "prod-r01", "wave": 2, "key": "PROD_R01", "tier": "production",
                                   "target": "kubernetes", "promotesFrom": ["staging", "prod-canary"],
                                   "group": "regions"}


def test_a_whole_release_through_the_fleet(fleet):
    t1, t2, t3, t4, t5 = (f"{MONDAY}T{h:02d}:00:00Z" for h in (9, 10, 11, 12, 13))
    # --- the release: each release group in one edit, in every stack -------------------------
    for stack in ["staging", "prod-canary", *REGIONS]:
        ok(fleet, "release", "--stack", stack, "--group", "checkout", "--now", t1,
           "--image", f"checkout-api={image('checkout-api', R)}", "--image", f"checkout-worker={image('checkout-worker', R)}")
        ok(fleet, "release", "--stack", stack, "--group", "search", "--now", t1,
           *[a for s in ("search-api", "search-indexer", "search-web") for a in ("--image", f"{s}={image(s, R)}")])
    # A member alone is not released: the group is.
    code, _, err = run(fleet, "release", "--stack", "staging", "--service", "checkout-api", "--image",
                       image("checkout-api", "2.0.1"), "--now", t1)
    assert code == 2 and "release group checkout" in err

    # --- wave 0 first; the release groups in lockstep -------------------------------------------
    refused(fleet, STAGING_FIRST, "advance", "--stack", "prod-canary", "--all-services", "--now", t2)
    ok(fleet, "advance", "--stack", "staging", "--service", "checkout-api", "--now", t2)
    # checkout-worker has not entered 50 %: checkout-api may not go on to 100 %.
    out = refused(fleet, RELEASE_GROUP_IN_STEP, "advance", "--stack", "staging", "--service", "checkout-api", "--now", t3)
    assert "checkout-worker of release group checkout" in out
    for service in ("checkout-worker", "search-api", "search-indexer", "search-web"):
        ok(fleet, "advance", "--stack", "staging", "--service", service, "--now", t3)
    ok(fleet, "advance", "--stack", "staging", "--all-services", "--now", t4)  # every service to 100 %, together
    assert {h[-1]["weight"] for h in (history(fleet, "staging", s) for s in ("checkout-api", "search-web"))} == {100}

    # --- wave 1, then wave 2: each after the wave before completed the stage ---------------------
    ok(fleet, "advance", "--stack", "prod-canary", "--all-services", "--now", t4)
    refused(fleet, STAGING_FIRST, "advance", "--stack", "prod-r01", "--all-services", "--now", t4)
    # --- the fleet-wide limit: three regions at a time before one completes the release --------
    for region in REGIONS[:3]:
        ok(fleet, "advance", "--stack", region, "--all-services", "--now", t5)
    out = refused(fleet, FLEET_LIMIT, "advance", "--stack", "prod-r04", "--all-services", "--now", t5)
    assert "fleet group regions allows 3 stack(s)" in out and "prod-r01 at 50%" in out
    commit_all(fleet, "deployed: three regions at 50 %")
    checked(fleet, "prod-r04", FLEET_LIMIT, t5)
    view = json.loads(ok(fleet, "status", "--release", image("checkout-api", R), "--format", "json", "--now", t5))
    rows = {r["stack"]: r for r in view["releases"][image("checkout-api", R)]}
    assert [r["wave"] for r in view["releases"][image("checkout-api", R)]] == sorted(r["wave"] for r in rows.values())
    # prod-r01 waits for its own soak, the canary region's 100 % and its group's members' 50 %.
    assert rows["prod-r04"]["waitsFor"] == "limit" and rows["prod-r01"]["waitsFor"] == "soak, upstream, group"
    assert rows["prod-r01"]["nextMove"] == f"{MONDAY}T14:00:00Z, after upstream and group"
    ok(fleet, "advance", "--stack", "prod-canary", "--all-services", "--now", t5)  # the canary region to 100 %

    # --- a freeze refuses; an override passes with its entry; a stack without overrides holds ----
    friday = "2031-03-07T15:30:00Z"  # 16:30 in Berlin, inside the weekend window
    plan = json.loads(ok(fleet, "plan", "--all", "--format", "json", "--now", friday))
    r02 = next(s for s in plan["schedules"] if s["stack"] == "prod-r02" and s["service"] == "checkout-api")
    assert r02["stages"][2]["earliestStart"] == "2031-03-10T07:00:00Z"  # Monday 08:00 in Berlin
    out = refused(fleet, FREEZE_WINDOW, "advance", "--stack", "prod-r01", "--all-services", "--now", friday)
    assert "inside freeze window weekend (Friday 16:00 to Monday 08:00, Europe/Berlin)" in out
    commit_all(fleet, "deployed: the canary region at 100 %")
    checked(fleet, "prod-r02", FREEZE_WINDOW, friday)
    ok(fleet, "override", "--stack", "prod-r01", "--by", "alice", "--reason", "the fix for incident 42",
       "--until", "2031-03-07T18:00:00Z", "--now", friday)
    entry = history(fleet, "prod-r01", "checkout-api")[-1]
    assert entry["kind"] == "override" and entry["by"] == "alice" and entry["until"] == "2031-03-07T18:00:00Z"
    ok(fleet, "advance", "--stack", "prod-r01", "--all-services", "--now", friday)
    assert history(fleet, "prod-r01", "checkout-api")[-1]["weight"] == 100
    code, out, err = run(fleet, "override", "--stack", REGIONS[-1], "--by", "alice", "--reason", "x", "--until",
                         "2031-03-07T18:00:00Z", "--now", friday)
    assert code == 1 and "does not allow overrides" in err
    # The check lists the override; the preview comment shows it.
    from rollout.cli.comment import build

    code, out, err = run(fleet, "check", "--stack", "prod-r01", "--now", friday)
    assert "override: checkout-api: by alice from 2031-03-07T15:30:00Z until 2031-03-07T18:00:00Z" in out, out + err
    assert "**Freeze overrides**" in build("prod-r01", out, code, [])
    commit_all(fleet, "deployed: prod-r01 at 100 % under an override")

    # --- a rollback in the canary region halts the regions downstream; the group rolls back together
    monday = "2031-03-10T09:00:00Z"
    ok(fleet, "rollback", "--stack", "prod-canary", "--service", "checkout-api", "--reason", "errors", "--now", monday)
    assert history(fleet, "prod-canary", "checkout-worker")[-1] == {
        "weight": 0, "startedAt": monday, "release": image("checkout-worker", R), "plan": "custom", "reason": "errors"}
    out = refused(fleet, FLEET_HALT, "advance", "--stack", "prod-r02", "--service", "checkout-api", "--now", monday)
    assert f"prod-canary rolled back {image('checkout-api', R)}" in out
    commit_all(fleet, "deployed: the canary region rolled back")
    checked(fleet, "prod-r03", FLEET_HALT, monday)
    # The search group was not rolled back: it goes on.
    ok(fleet, "advance", "--stack", "prod-r02", "--service", "search-api", "--now", monday)
    # A resume recorded where the rollback happened lifts the halt.
    ok(fleet, "resume", "--stack", "prod-canary", "--service", "checkout-api", "--by", "bob", "--reason",
       "the errors were the region's network", "--now", monday)
    code, out, err = run(fleet, "advance", "--stack", "prod-r02", "--service", "checkout-api", "--dry-run", "--now",
                         monday)
    assert FLEET_HALT not in out + err


def test_a_cycle_or_an_unknown_stack_is_exit_2_naming_the_file_and_the_key(tmp_path):
    build_fleet(tmp_path, regions=2, start="2026-01-05T06:00:00Z")
    path = tmp_path / "stacks" / "Pulumi.staging.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["rollout:promotesFrom"] = "prod-r02"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    code, _, err = run(tmp_path, "stacks")
    assert code == 2 and err.startswith("stacks/Pulumi.staging.yaml: rollout:promotesFrom: makes a cycle "
                                        "(staging → prod-r02 → staging, each promoting from the next)"), err
    code, _, err = run(tmp_path, "status", "--stack", "staging")
    assert code == 2 and err.startswith("stacks/Pulumi.staging.yaml: rollout:promotesFrom: makes a cycle"), err
    document["config"]["rollout:promotesFrom"] = ["prod-nowhere"]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    code, _, err = run(tmp_path, "stacks")
    assert code == 2 and "stacks/Pulumi.staging.yaml: rollout:promotesFrom: 'prod-nowhere' is not a stack" in err
    code, _, err = run(tmp_path, "plan", "--stack", "staging")
    assert code == 2 and "stacks/Pulumi.staging.yaml: rollout:promotesFrom: 'prod-nowhere' has no stack file" in err
