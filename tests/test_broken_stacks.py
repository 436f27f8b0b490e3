"""A corpus of hand-written broken stack files, each with the message it must give.

tests/fixtures/broken/<case>.yaml holds the file; its first line
``# expect: <text>`` (or, for files that cannot carry a comment, <case>.expect)
holds the message, which must appear after ``stacks/Pulumi.<case>.yaml: ``, both
from the loader and from the `rollout check` command (exit 2, no traceback).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from figures import count
from rollout.model.errors import ConfigError
from rollout.load.stack import load_file

CORPUS = Path(__file__).parent / "fixtures" / "broken"


def _expected(path: Path) -> str:
    sidecar = path.with_suffix(".expect")
    if sidecar.exists():
        return sidecar.read_text().strip()
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <message>'"
    return first.removeprefix("# expect: ")


CASES = sorted(CORPUS.glob("*.yaml"))


def test_the_corpus_covers_the_cases_hardening_asks_for():
    names = {p.stem for p in CASES}
    for needed in (
        "wrong-type-replicas", "unknown-key-service", "yaml-syntax-error", "duplicate-key",
        "history-out-of-order", "history-in-the-future", "weight-not-in-plan", "empty", "binary",
    ):
        assert needed in names


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "stacks").mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_a_broken_stack_file_gives_its_message(project, case):
    target = project / "stacks" / f"Pulumi.{case.stem}.yaml"
    shutil.copy(case, target)
    with pytest.raises(ConfigError) as caught:
        load_file(target, project)
    expected = f"stacks/Pulumi.{case.stem}.yaml: {_expected(case)}"
    assert any(line.startswith(expected) for line in caught.value.problems), caught.value.problems
    count("broken stack files", "refused with the expected message")


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_rollout_check_refuses_it_with_exit_2_and_no_traceback(project, case):
    shutil.copy(case, project / "stacks" / f"Pulumi.{case.stem}.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "rollout.cli", "--project", str(project), "check", "--stack", case.stem],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"stacks/Pulumi.{case.stem}.yaml: {_expected(case)}" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


#: A rollback is never refused: an entry a fast clock wrote refuses an advance, not a rollback.
NEVER_REFUSED = {("history-in-the-future", "rollback")}


def test_a_rollback_goes_through_where_an_edit_is_refused(project, case=CORPUS / "history-in-the-future.yaml",
                                                         capsys=None):
    from rollout.cli import main

    target = project / "stacks" / f"Pulumi.{case.stem}.yaml"
    shutil.copy(case, target)
    assert main(["--project", str(project), "rollback", "--stack", case.stem, "--reason", "page"]) == 0
    history = yaml.safe_load(target.read_text())["config"]["rollout:services"][0]["rollout"]["history"]
    # Recorded at the future entry's time: the history stays in order.
    assert history[-1]["weight"] == 0 and history[-1]["startedAt"] == history[-2]["startedAt"]
    # The rollback's tolerance ends with it: the next advance is refused as before.
    assert main(["--project", str(project), "advance", "--stack", case.stem]) == 2
    count("broken stack files", "rollbacks that went through where an advance is refused")


@pytest.mark.parametrize("command", [("advance",), ("rollback", "--reason", "broken file"), ("status",)],
                         ids=["advance", "rollback", "status"])
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_an_edit_of_a_broken_file_is_refused_with_exit_2_and_leaves_it_as_it_was(project, case, command, capsys):
    from rollout.cli import main

    if (case.stem, command[0]) in NEVER_REFUSED:
        return test_a_rollback_goes_through_where_an_edit_is_refused(project, case, capsys)

    target = project / "stacks" / f"Pulumi.{case.stem}.yaml"
    shutil.copy(case, target)
    before = target.read_bytes()
    code = main(["--project", str(project), command[0], "--stack", case.stem, *command[1:]])
    captured = capsys.readouterr()
    assert code == 2, captured.out + captured.err
    assert f"stacks/Pulumi.{case.stem}.yaml: {_expected(case)}" in captured.err
    assert "Traceback" not in captured.err
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")) == [target.name]
    count("broken stack files", f"{command[0]} refused, file unchanged")
