"""`rollout advance` and `rollout rollback` killed half-way, or running two at once.

The stack file is always either the old one or the new one, never a mix, and
no entry is ever lost. Each writer is a real `rollout` process; a small driver
holds it at a chosen point of its edit (after reading the file, after writing
the temporary file, just before the rename) so the fault lands exactly there,
and other runs are killed at random moments.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, edit_stack
from figures import count
from rollout.cli import main
from rollout.load.stackfile import locked

STACK = "dev"

#: Runs ``rollout`` with its edit held at one point for PAUSE_S seconds, after
#: writing "paused" to the marker file: the moment for a test to strike.
DRIVER = r"""
import os, sys, time
from pathlib import Path

import rollout.load.stackfile as stackfile

marker, point, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
pause_s = float(os.environ.get("PAUSE_S", "60"))


def hold():
    if not marker.exists():
        marker.write_text("paused")
        time.sleep(pause_s)


if point == "after-read":
    edited_text = stackfile.edited_text

    def slow_edit(*args, **kwargs):
        text = edited_text(*args, **kwargs)
        hold()
        return text

    stackfile.edited_text = slow_edit
elif point == "after-temp-write":
    fsync = os.fsync

    def slow_fsync(descriptor):
        fsync(descriptor)
        hold()

    os.fsync = slow_fsync
elif point == "before-rename":
    replace = os.replace

    def slow_replace(source, target):
        hold()
        replace(source, target)

    os.replace = slow_replace

from rollout.cli import main

sys.exit(main(argv))
"""


def start(project: Path, marker: Path, point: str, *args: str, pause_s: float = 60) -> subprocess.Popen:
    env = {**os.environ, "PAUSE_S": str(pause_s)}
    env.pop("ROLLOUT_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(marker), point, "--project", str(project), *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(marker: Path, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"the writer ended before the fault: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the writer never reached the fault point")
        time.sleep(0.02)


def stack_path(project: Path) -> Path:
    return project / "stacks" / f"Pulumi.{STACK}.yaml"


def histories(project: Path) -> dict[str, list[dict]]:
    document = yaml.safe_load(stack_path(project).read_text())
    return {s["name"]: s["rollout"]["history"] for s in document["config"]["rollout:services"]}


def old_or_new(before: str, after: str, added: int) -> str:
    """"old" or "new" (``before`` plus ``added`` history entries, nothing else changed); fails on anything else."""
    if after == before:
        return "old"
    old_lines, new_lines = before.splitlines(), after.splitlines()
    # An append only inserts lines: every old line is still there, in order.
    it = iter(new_lines)
    assert all(line in it for line in old_lines), "an old line is missing or moved: a mixed file"
    old_count = sum(len(h) for h in _histories(before).values())
    assert sum(len(h) for h in _histories(after).values()) == old_count + added, "not exactly the new entries"
    return "new"


def _histories(text: str) -> dict[str, list[dict]]:
    return {s["name"]: s["rollout"]["history"] for s in yaml.safe_load(text)["config"]["rollout:services"]}


@pytest.mark.parametrize(
    "point",
    ["after-read", "after-temp-write", "before-rename"],
    ids=["killed after reading the file", "killed with the temporary file written", "killed just before the rename"],
)
def test_a_writer_killed_half_way_leaves_the_old_file_and_the_next_edit_goes_through(project, tmp_path, point):
    before = stack_path(project).read_text()
    marker = tmp_path / "marker"
    writer = start(project, marker, point, "rollback", "--stack", STACK, "--reason", "killed")
    wait_for(marker, writer)
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=30)
    assert stack_path(project).read_text() == before
    count("faults: stack file edits", "writers killed at a chosen point", 1)

    # The kernel dropped the dead writer's lock; the next edit takes it at once,
    # removes the leftover temporary file and appends its entry.
    assert main(["--project", str(project), "rollback", "--stack", STACK, "--reason", "after the crash"]) == 0
    assert old_or_new(before, stack_path(project).read_text(), 1) == "new"
    assert histories(project)["genesis"][-1]["reason"] == "after the crash"
    assert not list(stack_path(project).parent.glob(".*.tmp"))
    count("faults: stack file edits", "edits that went through after a killed writer", 1)


def test_writers_killed_at_random_moments_leave_the_old_file_or_the_new_one(project, tmp_path):
    rng = random.Random(20261127)
    outcomes = {"old": 0, "new": 0}
    for run in range(12):
        before = stack_path(project).read_text()
        writer = subprocess.Popen(
            [sys.executable, "-m", "rollout.cli", "--project", str(project), "rollback", "--stack", STACK,
             "--reason", f"run {run}"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        # A run takes about 0.4 s, mostly imports: strike anywhere in it.
        time.sleep(rng.uniform(0.05, 0.5))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        outcomes[old_or_new(before, stack_path(project).read_text(), 1)] += 1
    count("faults: stack file edits", "writers killed at random moments", sum(outcomes.values()))
    count("faults: stack file edits", "random kills that left the old file", outcomes["old"])
    count("faults: stack file edits", "random kills that left the new file", outcomes["new"])
    assert main(["--project", str(project), "rollback", "--stack", STACK, "--reason", "after the kills"]) == 0


def test_two_writers_at_once_both_land_and_neither_entry_is_lost(project, tmp_path):
    def add_exodus(config):
        genesis = config["rollout:services"][0]
        config["rollout:services"].append({**yaml.safe_load(yaml.safe_dump(genesis)), "name": "exodus"})

    edit_stack(project, STACK, add_exodus)
    before = stack_path(project).read_text()
    marker = tmp_path / "marker"
    # The first writer has read the file and holds on to its edit for a while...
    first = start(project, marker, "after-read", "rollback", "--stack", STACK, "--service", "genesis",
                  "--reason", "first", pause_s=3)
    wait_for(marker, first)
    # ...while the second one starts, reads and writes: without the lock it
    # would write first and the first writer's rename would then erase its entry.
    second = start(project, tmp_path / "unused", "none", "advance", "--stack", STACK, "--service", "exodus",
                   "--reason", "second")
    results = [p.communicate(timeout=120) for p in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), results
    assert old_or_new(before, stack_path(project).read_text(), 2) == "new"
    found = histories(project)
    assert found["genesis"][-1]["reason"] == "first" and found["genesis"][-1]["weight"] == 0
    assert found["exodus"][-1]["reason"] == "second" and found["exodus"][-1]["weight"] == 50
    count("faults: stack file edits", "concurrent writers", 2)
    count("faults: stack file edits", "concurrent entries kept", 2)


def test_a_writer_that_cannot_get_the_lock_in_time_changes_nothing_and_says_why(project, capsys, monkeypatch):
    import rollout.load.stackfile

    monkeypatch.setattr(rollout.load.stackfile, "LOCK_WAIT_S", 0.3)
    before = stack_path(project).read_text()
    with locked(stack_path(project)):
        code = main(["--project", str(project), "rollback", "--stack", STACK, "--reason", "blocked"])
    err = capsys.readouterr().err
    assert code == 1
    assert "stacks/Pulumi.dev.yaml: another `rollout advance` or `rollout rollback` has been editing it" in err
    assert stack_path(project).read_text() == before
    count("faults: stack file edits", "writers turned away by a held lock", 1)
