"""The whole transition under the real engine: `pulumi preview --policy-pack policies` with the
config `python -m policies.pack` writes from the backend's deployed state.

dev is `up` at 10 % (a local state backend, manifests rendered to a folder); each case
edits the stack file, writes the pack's config and previews: the unsafe change is
refused naming its gate, the legitimate way passes.
"""

from __future__ import annotations

import json
import time

import pytest

from engine import EngineProject, commit_all, engine_project, service, stage_history
from rollout.gates.judge import HISTORY_APPEND_ONLY, NO_LOOSENING_ON_ADVANCE, STABLE_COMPLETED_ONLY

pytestmark = pytest.mark.engine

UNTESTED = "ghcr.io/example/genesis:9.9.9"


@pytest.fixture(scope="module")
def dev(tmp_path_factory) -> EngineProject:
    project = engine_project(tmp_path_factory.mktemp("transition") / "project")

    def change(config: dict) -> None:
        config["rollout:monitoring"]["install"] = False
        service(config)["rollout"]["history"] = stage_history(time.time(), [0, 5, 10])

    project.edit("dev", change)
    commit_all(project.path, "dev at 10 %")
    project.init("dev")
    deployed = project.up("dev")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    return project


def _preview(project: EngineProject, change) -> tuple:
    before = project.stack_file("dev").read_text()
    project.edit("dev", change)
    try:
        config = project.policy_config("dev")
        previewed = project.preview("dev", "--policy-pack-config", str(config))
        return previewed, json.loads(config.read_text())
    finally:
        project.stack_file("dev").write_text(before)


def _refused(project: EngineProject, change, *gates: str) -> str:
    previewed, config = _preview(project, change)
    out = previewed.stdout + previewed.stderr
    assert previewed.returncode != 0, out
    for gate in gates:
        assert gate in out, out
    assert "mandatory" in out
    return out


def test_the_pack_is_handed_the_backends_deployed_state(dev):
    previewed, config = _preview(dev, lambda c: None)
    assert previewed.returncode == 0, previewed.stdout + previewed.stderr
    gate = config[HISTORY_APPEND_ONLY]
    assert gate["deployedStateSource"] == "the backend (pulumi stack output -s dev)"
    assert gate["deployedState"]["services"]["genesis"]["weight"] == 10


def test_a_deployed_entry_lowered_in_place_is_refused_and_a_rollback_passes(dev):
    _refused(dev, lambda c: service(c)["rollout"]["history"][-1].update(weight=0), HISTORY_APPEND_ONLY)

    def rollback(config):
        service(config)["rollout"]["history"].append(
            {"weight": 0, "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "reason": "incident"})

    previewed, _ = _preview(dev, rollback)
    assert previewed.returncode == 0, previewed.stdout + previewed.stderr


def test_a_renamed_service_on_an_untested_stable_image_is_refused(dev):
    def rename(config):
        service(config).update(name="genesis-v2")
        for flag in config["rollout:flags"].values():
            if flag.get("service") == "genesis":
                flag["service"] = "genesis-v2"  # a canary flag follows the service under its new key
        service(config, "genesis-v2")["stable"]["image"] = UNTESTED
        service(config, "genesis-v2")["rollout"]["history"] = [
            {"weight": 0, "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]

    _refused(dev, rename, HISTORY_APPEND_ONLY, STABLE_COMPLETED_ONLY)


def test_a_plan_loosened_beside_an_advance_is_refused(dev):
    def loosen_and_advance(config):
        service(config)["rollout"]["plan"] = "instant"
        service(config)["rollout"]["history"].append(
            {"weight": 100, "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    _refused(dev, loosen_and_advance, NO_LOOSENING_ON_ADVANCE)
