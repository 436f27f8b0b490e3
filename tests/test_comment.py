"""The Preview workflow's pull-request comment, built from real `rollout check` output.

A scratch copy of the stacks is committed (the pull request's base), then edited
as a pull request would edit it; `rollout check --base` runs as the workflow runs
it and its real output becomes the comment, compared with tests/golden/comment_*.md.
Refresh the golden files with ROLLOUT_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, edit_stack
from rollout.comment import MARKER, build_comment, parse_violations, weight_changes
from rollout.gates import GATE_POLICIES

GOLDEN = ROOT / "tests" / "golden"


def git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(project), "-c", "user.name=rollout tests", "-c", "user.email=tests@example.com", *args],
        capture_output=True, text=True, check=True,
    ).stdout


def rollout_check(project: Path, stack: str, base: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ROLLOUT_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "rollout.cli", "--project", str(project), "check", "--stack", stack, "--base", base],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def comment_cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rollout.comment", "--project", str(project), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def append_stage(weight: int, started_at: str):
    def change(config):
        config["rollout:services"][0]["rollout"]["history"].append({"weight": weight, "startedAt": started_at})

    return change


def based(project: Path) -> str:
    git(project, "init", "--quiet")
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "the pull request's base")
    return git(project, "rev-parse", "HEAD").strip()


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ROLLOUT_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs; refresh with ROLLOUT_UPDATE_GOLDEN=1 if intended"


# staging is at 10% since 2026-11-18 in the shipped stacks: a pull request that
# jumps to 50% skips 25% and shows no evidence, so the check refuses it twice.
CASES = [
    pytest.param("staging", append_stage(50, "2026-11-19T09:00:00Z"), 1, "comment_violation.md", id="a skipped stage is refused and the comment says which gate"),
    pytest.param("staging", append_stage(0, "2026-11-19T09:00:00Z"), 0, "comment_clean.md", id="a rollback to 0 passes and the comment shows the lower weight"),
]


@pytest.mark.parametrize("stack, change, exit_code, golden", CASES)
def test_the_comment_is_built_from_real_check_output(project, stack, change, exit_code, golden, tmp_path):
    base = based(project)
    edit_stack(project, stack, change)
    check = rollout_check(project, stack, base)
    assert check.returncode == exit_code, check.stdout + check.stderr
    output = tmp_path / "check.txt"
    output.write_text(check.stdout)
    # The path of the scratch project never shows: `rollout check` names stack files relative to it.
    assert str(project) not in check.stdout
    result = comment_cli(
        project, "--stack", stack, "--base", base, "--check-output", str(output), "--check-exit", str(exit_code),
        "--preview-note", "`pulumi preview` runs only where the stack's credentials are configured.",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == MARKER.format(stack=stack)
    assert_golden(golden, result.stdout.replace(base, "<base>"))


def test_every_violation_line_of_the_check_becomes_a_row(project):
    base = based(project)
    edit_stack(project, "staging", append_stage(50, "2026-11-19T09:00:00Z"))
    check = rollout_check(project, "staging", base)
    printed = [line for line in check.stdout.splitlines() if line.startswith("[mandatory]")]
    parsed = parse_violations(check.stdout)
    assert len(parsed) == len(printed) == 2
    assert {v.policy for v in parsed} == {"rollout-next-stage-only", "rollout-canary-within-budget"}
    body = build_comment("staging", weight_changes("staging", project, base), check.stdout, check.returncode)
    assert "| genesis | 10% | 50% | advance |" in body
    assert body.count("| mandatory |") == 2


def test_a_pipe_in_a_message_does_not_break_the_table():
    body = build_comment("dev", [], "[advisory] some-policy (res|x): a | b\n", 0)
    assert "| advisory | `some-policy` | res\\|x | a \\| b |" in body


def test_the_resource_diff_is_shown_without_terminal_colours():
    body = build_comment("dev", [], "", 0, preview_output="\x1b[32m+ \x1b[0mcreate  kubernetes:apps/v1:Deployment\n")
    assert "+ create  kubernetes:apps/v1:Deployment" in body
    assert "\x1b" not in body


def test_bad_input_is_not_called_a_pass():
    body = build_comment("dev", [], "stacks/Pulumi.dev.yaml: rollout:x: unknown key\n", 2)
    assert "not judged" in body and "pass" not in body.split("\n")[3]


def test_an_unknown_base_is_bad_input(project, tmp_path):
    based(project)
    (tmp_path / "check.txt").write_text("")
    result = comment_cli(project, "--stack", "dev", "--base", "no-such-ref", "--check-output", str(tmp_path / "check.txt"), "--check-exit", "0")
    assert result.returncode == 2
    assert "--base" in result.stderr and "Traceback" not in result.stderr


def test_the_policy_config_makes_the_packs_gates_judge_as_rollout_check_does(project, tmp_path):
    """The preview hands `rollout evidence`'s file to the pack as policy config; the
    pack's gate policies must then refuse exactly what `rollout check --evidence` refuses."""
    from policies.rules import POLICIES, Context
    from rollout.harness import run_program
    from rollout.policy_runner import resources_of
    from rollout.state import utc_now
    from servers import free_port

    based(project)
    evidence = tmp_path / "evidence.json"
    # Nothing listens on this port: the evidence records Prometheus as unreachable.
    unreachable = f"http://127.0.0.1:{free_port()}"
    collected = subprocess.run(
        [sys.executable, "-m", "rollout.cli", "--project", str(project), "evidence", "--stack", "staging",
         "--prometheus", unreachable, "--out", str(evidence)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert collected.returncode == 0, collected.stderr
    advanced = subprocess.run(
        [sys.executable, "-m", "rollout.cli", "--project", str(project), "advance", "--stack", "staging"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert advanced.returncode == 0, advanced.stderr
    made = comment_cli(project, "--stack", "staging", "--policy-config-from", str(evidence))
    assert made.returncode == 0, made.stderr
    config = json.loads(made.stdout)
    # staging is not production: the resource policies are advisory there, as in `rollout check`.
    assert config["rollout-pinned-images"] == "advisory"

    check = subprocess.run(
        [sys.executable, "-m", "rollout.cli", "--project", str(project), "check", "--stack", "staging", "--evidence", str(evidence)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert check.returncode == 1
    from_check = sorted((v.policy, v.message) for v in parse_violations(check.stdout) if v.level == "mandatory")

    resources = resources_of(run_program("staging", project))
    now = utc_now()
    from_pack = sorted(
        (policy.name, message)
        for policy in POLICIES if policy.always_mandatory
        for _, message in policy.check(resources, Context(now=now, config=config[policy.name]))
    )
    assert from_pack == from_check
    assert any(name == "rollout-canary-within-budget" for name, _ in from_pack)


def test_production_keeps_its_resource_policies_mandatory(tmp_path):
    evidence = tmp_path / "evidence.json"
    evidence.write_text(json.dumps({"stack": "production", "deployedState": None}))
    made = comment_cli(ROOT, "--stack", "production", "--policy-config-from", str(evidence))
    assert made.returncode == 0, made.stderr
    config = json.loads(made.stdout)
    assert set(config) == set(GATE_POLICIES)
    assert all(entry["enforcementLevel"] == "mandatory" for entry in config.values())
