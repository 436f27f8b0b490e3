"""Errors that reach users as one clear message, never as a traceback."""

from __future__ import annotations

import json

#: Characters that change what a terminal shows without being shown themselves,
#: beyond the control characters: line and paragraph separators, and the
#: bidirectional overrides and isolates that reorder text.
_INVISIBLE = frozenset("\u0085\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def printable(text: object) -> str:
    """``text`` as one line that shows what it holds: a newline, a carriage
    return, an escape sequence or any other control character becomes its
    backslash escape (``\\n``, ``\\x1b``, ``\\u2028``), so a value from a file,
    an argument or a server can neither forge a line nor move the cursor.
    A backslash is doubled only where the text has something to escape."""
    text = str(text)
    if all(ch.isprintable() and ch not in _INVISIBLE for ch in text):
        return text
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif ch.isprintable() and ch not in _INVISIBLE:
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def printable_lines(text: str) -> str:
    """``text``, a renderer's output of lines joined by ``\\n``, with each line
    made :func:`printable`: only ``\\n`` still ends a line, so whatever else a
    line holds (a carriage return, an escape sequence, a line separator) is
    shown as its escape and cannot move the cursor or start a line of its own."""
    return "\n".join(printable(line) for line in text.split("\n"))


def printable_json(value: object) -> str:
    """``value`` as JSON that shows only printable characters: JSON escapes
    control characters itself; the separators and bidirectional controls it
    leaves as they are become ``\\uXXXX`` too (still the same JSON)."""
    text = json.dumps(value, ensure_ascii=False)
    return "".join(ch if ch.isprintable() and ch not in _INVISIBLE else
                   "".join(f"\\u{unit:04x}" for unit in _utf16(ch)) for ch in text)


def _utf16(ch: str) -> list[int]:
    data = ch.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


class KeyedError(ValueError):
    """A validation failure at a key below the one being validated.

    Raised inside model validators; the loader appends ``path`` to the location
    pydantic reports, so the message names the exact key.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class ConfigError(Exception):
    """A stack config that cannot be used.

    ``problems`` holds one line per problem, each naming the file, the key path
    and what is allowed, e.g.
    ``stacks/Pulumi.production.yaml: rollout:flags.aatc.percentage: 130 is not between 0 and 100``.
    """

    def __init__(self, problems: list[str]) -> None:
        # One line per problem, whatever a key or value holds.
        problems = [p.replace("\r", "\\r").replace("\n", "\\n") for p in problems]
        super().__init__("\n".join(problems))
        self.problems = problems


class UsageError(Exception):
    """A command was called with arguments it cannot use (exit 2)."""


class Busy(Exception):
    """Another edit holds the stack file's lock past the wait (exit 1: try again)."""
