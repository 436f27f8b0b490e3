"""The pull request comment, built from real `rollout check` output (golden text).

Refresh the golden files with UPDATE_GOLDEN=1 (`UPDATE_GOLDEN=1 make test`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURE, ROOT
from rollout.gates.check import state_at_ref
from rollout.cli.comment import MARKER, build, weight_changes
from rollout.load.stack import load_stack
from rollout.model.state import rollout_state

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def repo(tmp_path):
    """A git repository holding the project's stacks, as a pull request's base."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(FIXTURE / "stacks", tmp_path / "stacks")
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=tmp_path, check=True)
    return tmp_path


def _append(repo: Path, stack: str, weight: int, started: str) -> None:
    path = repo / "stacks" / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["rollout:services"][0]["rollout"]["history"].append({"weight": weight, "startedAt": started})
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _comment(repo: Path, stack: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "rollout.cli", "--project", str(repo), "check", "--stack", stack],
        capture_output=True, text=True, timeout=300,
    )
    new = rollout_state(load_stack(stack, repo), stack)
    old = state_at_ref(stack, repo, "HEAD")
    return build(stack, result.stdout + result.stderr, result.returncode, weight_changes(old, new))


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_a_skipped_stage_without_evidence_gives_a_refusing_comment(repo):
    _append(repo, "staging", 50, "2026-11-26T09:00:00Z")
    text = _comment(repo, "staging")
    assert text.startswith(MARKER.format(stack="staging"))
    assert "❌ **refused**: 2 mandatory violation(s)" in text
    assert "`genesis`: 10 % → 50 % (advance)" in text
    _golden("comment_violation.md", text)


def test_an_unchanged_stack_gives_a_clean_comment(repo):
    text = _comment(repo, "production")
    assert "✅ **allowed**" in text
    _golden("comment_clean.md", text)


def test_a_rollback_is_allowed_and_says_so(repo):
    _append(repo, "staging", 0, "2026-11-26T09:00:00Z")
    text = _comment(repo, "staging")
    assert "✅ **allowed**" in text and "10 % → 0 % (rollback)" in text


def test_the_comment_embeds_the_schedule_as_mermaid_the_status_table_and_the_rendered_diff():
    from rollout.cli.comment import MAX_DIFF_CHARS, build

    plan = "gantt\n    dateFormat YYYY-MM-DD HH:mm\n    section genesis on staging\n    0 % :done, s0s0, 2031-03-03 09:00, 1440m\n"
    diff = "--- a/kubernetes/genesis-httproute.yaml\n+++ b/kubernetes/genesis-httproute.yaml\n@@ -1 +1 @@\n-      weight: 0\n+      weight: 5\n"
    body = build("staging", "", 0, ["`genesis`: 0 % → 5 % (advance)"], diff=diff, plan=plan, status="| stack |\n|---|\n| staging |\n")
    assert "```mermaid\ngantt\n" in body and "section genesis on staging" in body
    assert "Rendered files: 1 changed (rollout diff)" in body and "```diff\n--- a/kubernetes/genesis-httproute.yaml" in body
    assert "| staging |" in body
    assert "Rendered files: unchanged" in build("staging", "", 0, [], diff="")
    long = build("staging", "", 0, [], diff="+x\n" * MAX_DIFF_CHARS)
    assert "(cut: run `rollout diff` for the rest)" in long and len(long) < 65536


def test_a_stage_held_by_inconclusive_evidence_says_held_and_a_failing_one_refused():
    held = ("[mandatory] rollout-canary-within-budget (service genesis): error ratio: canary 0 % [0 %, 2.4 %] over 155 "
            "requests vs stable 0 % over 1,395: cannot yet show it within the budget of 1 % (its upper bound 2.4 % "
            "is above it) (inconclusive: the stage holds and keeps soaking; no rollback)\n")
    failed = ("[mandatory] rollout-canary-within-budget (service exodus): error ratio: canary 0.9 % [0.75 %, 1.1 %] "
              "over 14,200 requests vs stable 0.01 % over 270,000: worse than stable beyond tolerance 2× (fail)\n")
    weights = ["`genesis`: 10 % → 25 % (advance)"]
    text = build("staging", held, 1, weights)
    assert "⏸️ **held**: 1 measure(s) inconclusive; the stage keeps soaking" in text
    assert "worse than stable" not in text and "cannot yet show it within the budget of 1 %" in text
    both = build("staging", held + failed, 1, weights)
    assert "❌ **refused**: 2 mandatory violation(s)" in both and "**held**" not in both
