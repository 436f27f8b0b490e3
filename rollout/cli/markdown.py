"""Values placed in GitHub Markdown (the pull request's comment, the Stage watch
summary) so that they show as they are and stay where they are put: a value
never ends its table cell, its code span or its code block, never opens an HTML
tag or comment, and reaches the page on one line (rollout.model.errors.printable)."""

from __future__ import annotations

import re

from rollout.model.errors import printable, printable_lines

#: What would let a value out of its table cell: ``|`` ends the cell, ``<``
#: opens HTML (``<details>``, a ``<!--`` comment that hides the rest) and ``\\``
#: escapes the character after it. Each is written so that GitHub shows the
#: character itself. (A backtick or ``*`` only formats within the cell.)
_CELL = {"\\": "\\\\", "|": "\\|", "<": "&lt;"}
_BACKTICKS = re.compile(r"`+")


def cell(text: object) -> str:
    """``text`` as the content of one table cell: one line, every character shown."""
    return "".join(_CELL.get(ch, ch) for ch in printable(text))


def _longest_run(text: str) -> int:
    return max((len(m) for m in _BACKTICKS.findall(text)), default=0)


def code_span(text: object, in_table: bool = False) -> str:
    """``text`` as an inline code span: delimited by one backtick more than the
    longest run inside it (so none of them closes it), padded with a space when
    it starts or ends with a backtick. In a table cell a ``|`` ends the cell even
    inside a code span, so there it is escaped too (GitHub shows ``|``)."""
    shown = printable(text)
    ticks = "`" * (_longest_run(shown) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") or not shown.strip() else ""
    body = f"{ticks}{pad}{shown}{pad}{ticks}"
    return body.replace("|", "\\|") if in_table else body


def code_block(text: str, info: str = "") -> list[str]:
    """``text`` as a fenced code block, one list item per line: its lines made
    printable, fenced by more backticks than any run inside it, so no line of
    the text closes the block (and what follows it is never read as the text)."""
    shown = printable_lines(text)
    fence = "`" * max(3, _longest_run(shown) + 1)
    return [f"{fence}{info}", *shown.split("\n"), fence]
