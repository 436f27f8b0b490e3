"""A rollback is never refused: not by a clock that was ahead, not by an advance reading its evidence."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from figures import count
from stackfiles import SERVICE, set_history, stack_path

STACK = "staging"


def rollout(project: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ROLLOUT_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "rollout.cli", "--project", str(project), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def history(project: Path) -> list[dict]:
    document = yaml.safe_load(stack_path(project, STACK).read_text())
    service = next(s for s in document["config"]["rollout:services"] if s["name"] == SERVICE)
    return service["rollout"]["history"]


@pytest.mark.parametrize("ahead", [timedelta(minutes=3), timedelta(minutes=20), timedelta(days=2)])
def test_a_rollback_goes_through_after_an_entry_a_fast_clock_wrote(project, ahead):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    future = stamp(now + ahead)
    set_history(project, STACK, [(0, "2026-11-16T09:00:00Z"), (5, "2026-11-17T09:00:00Z"), (10, future)])
    result = rollout(project, "rollback", "--stack", STACK, "--reason", "canary errors")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    last = history(project)[-1]
    # Recorded at the future entry's time: the history stays in time order and loads again.
    assert last["weight"] == 0 and last["startedAt"] == future
    assert rollout(project, "rollback", "--stack", STACK, "--reason", "again").returncode == 0
    count("rollback", "rollbacks after a future entry, gone through", 2)


def test_an_advance_never_takes_the_lock_while_its_evidence_is_still_coming(project, tmp_path):
    fifo = tmp_path / "evidence.fifo"
    os.mkfifo(fifo)
    env = {k: v for k, v in os.environ.items() if k != "ROLLOUT_DEBUG"}
    advance = subprocess.Popen(
        [sys.executable, "-m", "rollout.cli", "--project", str(project), "advance", "--stack", STACK,
         "--evidence", str(fifo)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(2)  # the advance is blocked opening the FIFO, as on a slow `rollout evidence`
        assert advance.poll() is None
        rollback = rollout(project, "rollback", "--stack", STACK, "--reason", "page", timeout=60)
        assert rollback.returncode == 0, rollback.stderr
        assert history(project)[-1]["weight"] == 0
        count("rollback", "rollbacks while an advance waited for its evidence, gone through", 1)
    finally:
        # Unblock the advance (an empty evidence file: bad input) and reap it.
        with open(fifo, "w"):
            pass
        advance.communicate(timeout=60)
    assert advance.returncode == 2


@pytest.mark.parametrize("command", [("rollback", "--reason", "page"), ("rollback", "--reason", "page", "--dry-run")])
def test_an_entry_after_one_with_a_fraction_of_a_second_keeps_the_history_in_order(project, command):
    """Entries are written to the second: the next one is the whole second after, never before."""
    set_history(project, STACK, [(0, "2026-11-16T09:00:00Z"), (5, "2026-11-17T09:00:00.5Z")])
    result = rollout(project, *command[:1], "--stack", STACK, *command[1:], "--now", "2026-11-17T09:00:00Z")
    assert result.returncode == 0, result.stderr
    if "--dry-run" in command:
        assert 'startedAt: "2026-11-17T09:00:01Z"' in result.stdout
    else:
        assert history(project)[-1]["startedAt"] == "2026-11-17T09:00:01Z"
