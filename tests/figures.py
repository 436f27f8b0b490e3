"""Figures the hardening tests collect (cases tried, faults injected, what survived),
printed at the end of the test run by conftest's terminal-summary hook."""

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
