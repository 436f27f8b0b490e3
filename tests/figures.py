"""Figures the hardening tests collect (cases tried, faults injected, what survived),
printed at the end of the test run by conftest's terminal-summary hook.

When the tests run in parallel, each worker process counts its own; conftest
hands them to the main process, which adds them up (:func:`snapshot`, :func:`merge`).
"""

from __future__ import annotations

from collections import defaultdict

_FIGURES: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


def count(topic: str, what: str, n: int = 1) -> None:
    """Add ``n`` to the figure ``what`` under ``topic``."""
    _FIGURES[topic][what] += n


def report() -> list[str]:
    """A heading per topic, then one indented line per figure."""
    lines = []
    for topic in sorted(_FIGURES):
        lines.append(f"{topic}:")
        lines.extend(f"  {what}: {n}" for what, n in sorted(_FIGURES[topic].items()))
    return lines


def snapshot() -> dict[str, dict[str, int]]:
    """The figures so far, as plain dicts (what a worker process sends back)."""
    return {topic: dict(figures) for topic, figures in _FIGURES.items()}


def merge(figures: dict[str, dict[str, int]]) -> None:
    """Add another process's figures to these."""
    for topic, values in figures.items():
        for what, n in values.items():
            _FIGURES[topic][what] += n
