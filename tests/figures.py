"""Figures the hardening tests collect (cases tried, faults injected, what survived),
printed at the end of the test run by conftest's terminal-summary hook."""

from __future__ import annotations

from collections import defaultdict

_FIGURES: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
_LONGEST: dict[str, dict[str, float]] = defaultdict(dict)


def count(topic: str, what: str, n: int = 1) -> None:
    """Add ``n`` to the figure ``what`` under ``topic``."""
    _FIGURES[topic][what] += n


def longest(topic: str, what: str, seconds: float) -> None:
    """Keep the longest time ``what`` took under ``topic``."""
    _LONGEST[topic][what] = max(seconds, _LONGEST[topic].get(what, 0.0))


def report() -> list[str]:
    """A heading per topic, then one indented line per figure."""
    lines = []
    for topic in sorted(set(_FIGURES) | set(_LONGEST)):
        lines.append(f"{topic}:")
        lines.extend(f"  {what}: {n}" for what, n in sorted(_FIGURES[topic].items()))
        lines.extend(f"  {what}: {s:.2f} s" for what, s in sorted(_LONGEST[topic].items()))
    return lines
