"""Golden files for the monitoring configs each stack renders: rules, prometheus.yml, alertmanager.yml.

They live in tests/golden/<stack>/prometheus/ and tests/golden/<stack>/alertmanager/,
byte for byte as ``rollout render`` writes them. A change to a threshold, a
route or a rule shows up as a reviewable diff here. Refresh them after an
intended change with ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_alert_golden.py``
and review ``git diff tests/golden``.
"""

from __future__ import annotations

import os
import re

import pytest

from conftest import FIXTURE, ROOT, STACKS
from rollout.build.artifacts import build_artifacts
from rollout.load.stack import load_stack

GOLDEN = ROOT / "tests" / "golden"
FOLDERS = ("prometheus", "alertmanager")


def _monitoring_files(stack: str) -> dict[str, str]:
    files = build_artifacts(load_stack(stack, FIXTURE), stack).files
    return {path: text for path, text in files.items() if path.split("/")[0] in FOLDERS}


@pytest.mark.parametrize("stack", STACKS)
def test_rendering_twice_gives_the_same_bytes_without_float_noise(stack):
    first, second = _monitoring_files(stack), _monitoring_files(stack)
    assert first == second
    for path, text in first.items():
        assert not re.search(r"\d\.\d{7,}", text), (path, "float noise")


@pytest.mark.parametrize("stack", STACKS)
def test_the_golden_files_match(stack):
    rendered = _monitoring_files(stack)
    folder = GOLDEN / stack
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for sub in FOLDERS:
            for old in (folder / sub).rglob("*"):
                if old.is_file():
                    old.unlink()
        for path, text in rendered.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text)
    stored = {
        str(path.relative_to(folder)): path.read_text()
        for sub in FOLDERS
        for path in sorted((folder / sub).rglob("*"))
        if path.is_file()
    }
    assert sorted(stored) == sorted(rendered), "files added or removed: review, then UPDATE_GOLDEN=1"
    for path, text in rendered.items():
        assert stored[path] == text, (
            f"{stack}/{path} changed: review, then UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_alert_golden.py"
        )
