"""The fleet gates under the real engine: `pulumi preview --policy-pack policies` with the config
`python -m policies.pack` writes (the other stacks' deployed states read once, by rollout.gates.fleetread).

dev is `up` at 10 % promoting from `dev-up` (a stack never deployed through the backend: its
stack file at git HEAD counts) and counting against the fleet group `devs` (one stack at a
time). Each case previews a change the pack must refuse, naming the new gate:

- rollout-fleet-halt: dev-up rolled the release back, dev advances it;
- rollout-freeze-window: dev advances inside a freeze window;
- rollout-fleet-limit: a second stack of `devs` enters 5 % while dev holds the release;
- rollout-release-group-in-step: a member of a release group enters 5 % before the other completed 0 %.
"""

from __future__ import annotations

import copy
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from engine import EngineProject, at, commit_all, engine_project, service, stage_history
from rollout.gates.judge import FLEET_HALT, FLEET_LIMIT, FREEZE_WINDOW, RELEASE_GROUP_IN_STEP

pytestmark = pytest.mark.engine


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> EngineProject:
    project = engine_project(tmp_path_factory.mktemp("fleet-engine") / "project")

    def change(config: dict) -> None:
        config["rollout:monitoring"]["install"] = False
        service(config)["rollout"]["history"] = stage_history(time.time(), [0, 5, 10])

    project.edit("dev", change)
    upstream = yaml.safe_load(project.stack_file("dev").read_text())
    service(upstream["config"])["rollout"]["history"] = stage_history(time.time(), [0, 5, 10, 25])
    project.stack_file("dev-up").write_text(yaml.safe_dump(upstream, sort_keys=False))
    project.edit("dev", lambda c: c.update({"rollout:promotesFrom": "dev-up",
                                            "rollout:fleet": {"group": "devs", "maxInProgress": 1}}))
    commit_all(project.path, "dev at 10 % after dev-up, in the fleet group devs")
    project.init("dev")
    deployed = project.up("dev")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    return project


def _refused(project: EngineProject, stack: str, gate: str) -> str:
    config = project.policy_config(stack)
    previewed = project.preview(stack, "--policy-pack-config", str(config))
    out = previewed.stdout + previewed.stderr
    assert previewed.returncode != 0, out
    assert gate in out and "mandatory" in out, out
    return out


def _advance_dev(config: dict) -> None:
    service(config)["rollout"]["history"].append({"weight": 25, "startedAt": _now()})


def test_a_rollback_upstream_halts_the_advance_of_its_release(fleet):
    before = {s: fleet.stack_file(s).read_text() for s in ("dev", "dev-up")}
    fleet.edit("dev-up", lambda c: service(c)["rollout"]["history"].append(
        {"weight": 0, "startedAt": _now(), "reason": "CanaryErrorRateCritical"}))
    commit_all(fleet.path, "dev-up rolled back")
    fleet.edit("dev", _advance_dev)
    try:
        out = _refused(fleet, "dev", FLEET_HALT)
        assert "dev-up rolled back" in out
    finally:
        for stack, text in before.items():
            fleet.stack_file(stack).write_text(text)
        commit_all(fleet.path, "dev-up as before")


def test_an_advance_inside_a_freeze_window_is_refused(fleet):
    before = fleet.stack_file("dev").read_text()
    now = datetime.now(timezone.utc)
    window = {"name": "release-freeze", "start": (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M"),
              "end": (now + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M")}

    def frozen(config: dict) -> None:
        config["rollout:freeze"] = {"timeZone": "UTC", "windows": [window]}
        _advance_dev(config)

    fleet.edit("dev", frozen)
    try:
        out = _refused(fleet, "dev", FREEZE_WINDOW)
        assert "inside freeze window release-freeze" in out
    finally:
        fleet.stack_file("dev").write_text(before)


def _second_stack(fleet: EngineProject, change) -> None:
    """dev-b: dev's file (never deployed: not committed), changed; its stack initialised first."""
    if not fleet.stack_file("dev-b").exists():
        fleet.init("dev-b")
    document = yaml.safe_load(fleet.stack_file("dev").read_text())
    config = document["config"]
    config.pop("rollout:promotesFrom", None)
    config.pop("rollout:fleet", None)
    change(config)
    fleet.stack_file("dev-b").write_text(yaml.safe_dump(document, sort_keys=False))


def test_a_second_stack_of_the_group_entering_traffic_beyond_the_limit_is_refused(fleet):
    def in_group(config: dict) -> None:
        config["rollout:fleet"] = {"group": "devs", "maxInProgress": 1}
        service(config)["rollout"]["history"] = stage_history(time.time(), [0, 5])

    _second_stack(fleet, in_group)
    out = _refused(fleet, "dev-b", FLEET_LIMIT)
    assert "fleet group devs allows 1 stack(s)" in out and "dev at 10%" in out


def test_a_release_group_member_ahead_of_the_other_is_refused(fleet):
    def grouped(config: dict) -> None:
        genesis = service(config)
        genesis["rollout"]["history"] = stage_history(time.time(), [0, 5])
        worker = copy.deepcopy(genesis)
        worker["name"] = "genesis-worker"
        worker["route"] = {"hostnames": ["worker.example.com"]}
        worker["rollout"]["history"] = [{"weight": 0, "startedAt": at(time.time() - 600)}]
        config["rollout:services"].append(worker)
        config["rollout:releaseGroups"] = {"pair": ["genesis", "genesis-worker"]}

    _second_stack(fleet, grouped)
    out = _refused(fleet, "dev-b", RELEASE_GROUP_IN_STEP)
    assert "genesis-worker of release group pair has not completed the 0% stage" in out
