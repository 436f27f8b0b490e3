"""Shared fixtures: the project's paths, the shipped stacks, and scratch copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackfiles import FIXTURE, build_project, edit_stack  # noqa: F401  (edit_stack: re-exported for the tests)

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("local", "dev", "staging", "production")
KUBERNETES_STACKS = ("dev", "staging", "production")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The reference project (tests/stackfiles.py) in a scratch folder, safe to edit."""
    return build_project(tmp_path)


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
