"""`rollout render` and `rollout check` as a user runs them: a real process, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURE, ROOT, STACKS, edit_stack
from rollout.build.artifacts import build_artifacts
from rollout.load.stack import load_stack


def rollout(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ROLLOUT_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "rollout.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("stack", STACKS)
def test_render_writes_the_stacks_artifacts_exactly_as_built(tmp_path, stack):
    result = rollout("--project", str(FIXTURE), "render", "--stack", stack, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    expected = build_artifacts(load_stack(stack, FIXTURE), stack).files
    for relative, text in expected.items():
        assert (tmp_path / relative).read_text() == text, relative
    assert json.loads((tmp_path / "flags" / "flags.json").read_text())["flags"]


@pytest.mark.parametrize("stack", STACKS)
def test_check_accepts_every_reference_stack(stack):
    result = rollout("--project", str(FIXTURE), "check", "--stack", stack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"stack {stack}: config valid" in result.stdout


def test_check_exits_2_naming_the_key_of_a_bad_config(project):
    edit_stack(project, "staging", lambda c: c["rollout:flags"]["aatc"].update(percentage=130))
    result = rollout("--project", str(project), "check", "--stack", "staging")
    assert result.returncode == 2
    assert result.stderr.strip() == "stacks/Pulumi.staging.yaml: rollout:flags.aatc.percentage: 130 is not between 0 and 100"
    assert "Traceback" not in result.stderr


def test_render_refuses_a_bad_config_and_writes_nothing(project, tmp_path):
    edit_stack(project, "dev", lambda c: c["rollout:flags"]["aatc"].update(strategy="gradual"))
    out = tmp_path / "out"
    result = rollout("--project", str(project), "render", "--stack", "dev", "--out", str(out))
    assert result.returncode == 2
    assert "rollout:flags.aatc" in result.stderr
    assert not out.exists()


def test_an_unknown_stack_is_bad_input():
    result = rollout("check", "--stack", "qa")
    assert result.returncode == 2
    assert "no stack 'qa'" in result.stderr


def test_a_missing_argument_is_bad_input():
    result = rollout("render", "--stack", "dev")
    assert result.returncode == 2
    assert "--out" in result.stderr


def test_the_project_is_found_from_a_subfolder():
    result = rollout("check", "--stack", "dev", cwd=FIXTURE / "stacks")
    assert result.returncode == 0, result.stderr
