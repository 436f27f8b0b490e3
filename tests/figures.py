"""Figures the hardening tests collect (cases tried, faults injected, what survived),
printed at the end of the test run by conftest's terminal-summary hook.

When the tests run in parallel, each worker process counts its own; conftest
hands them to the main process, which adds them up (:func:`snapshot`, :func:`merge`).
"""

from __future__ import annotations

from collections import defaultdict

_FIGURES: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
_LONGEST: dict[str, dict[str, float]] = defaultdict(dict)
_MOST: dict[str, dict[str, float]] = defaultdict(dict)


def count(topic: str, what: str, n: int = 1) -> None:
    """Add ``n`` to the figure ``what`` under ``topic``."""
    _FIGURES[topic][what] += n


def longest(topic: str, what: str, seconds: float) -> None:
    """Keep the longest time ``what`` took under ``topic``."""
    _LONGEST[topic][what] = max(seconds, _LONGEST[topic].get(what, 0.0))


def most(topic: str, what: str, value: float) -> None:
    """Keep the largest value ``what`` had under ``topic``."""
    _MOST[topic][what] = max(value, _MOST[topic].get(what, value))


def report() -> list[str]:
    """A heading per topic, then one indented line per figure."""
    lines = []
    for topic in sorted(set(_FIGURES) | set(_LONGEST) | set(_MOST)):
        lines.append(f"{topic}:")
        lines.extend(f"  {what}: {n}" for what, n in sorted(_FIGURES[topic].items()))
        lines.extend(f"  {what}: {s:.2f} s" for what, s in sorted(_LONGEST[topic].items()))
        lines.extend(f"  {what}: {v:.0f}" for what, v in sorted(_MOST[topic].items()))
    return lines


def snapshot() -> dict[str, dict[str, int]]:
    """The figures so far, as plain dicts (what a worker process sends back)."""
    return {topic: dict(figures) for topic, figures in _FIGURES.items()}


def merge(figures: dict[str, dict[str, int]]) -> None:
    """Add another process's figures to these."""
    for topic, values in figures.items():
        for what, n in values.items():
            _FIGURES[topic][what] += n
