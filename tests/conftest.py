"""Shared fixtures: the project's paths, the shipped stacks, and scratch copies."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("local", "dev", "staging", "production")
KUBERNETES_STACKS = ("dev", "staging", "production")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch copy of the project's Pulumi.yaml and stacks/, safe to edit."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    return tmp_path


def edit_stack(project: Path, stack: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """Load a stack file of ``project``, apply ``change`` to its config mapping, write it back."""
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text())
    change(document["config"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def without_secrets(inputs: dict, secret_paths: set[str]) -> dict:
    """A resource's inputs with every subtree the program marked secret redacted."""

    def walk(value, path):
        if path in secret_paths:
            return "<redacted>"
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}" if path else k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    return walk(inputs, "")


def pytest_terminal_summary(terminalreporter):
    """Print the hardening figures (see tests/figures.py) after the results."""
    from figures import report

    lines = report()
    if lines:
        terminalreporter.section("rollout figures")
        for line in lines:
            terminalreporter.write_line(line)
