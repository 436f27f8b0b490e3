"""JSON from outside, read within bounds: size, nesting and numbers.

Evidence files, state files, the relay's webhook bodies and the answers of
servers are JSON that anyone may have written. :func:`loads` reads such a
document so that whatever it holds ends in a document or in one
:class:`JsonRefused` saying why, never in an exception of the parser:

- **size**: at most ``max_bytes`` (the callers' caps are here, one home for each);
- **nesting**: at most ``max_depth`` arrays and objects inside each other, checked
  by a scan of the text *before* the parser runs, so a document of 200,000 nested
  arrays never reaches the (recursive) parser, nor the code that walks the result;
- **numbers**: every number is one a float can hold. ``1e400`` (infinity to a
  float), ``NaN``/``Infinity`` (not JSON) and an integer of 400 digits (which
  cannot be compared with a float without an ``OverflowError``) are refused as
  values out of range.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

#: The largest document read from a server or a file the commands are given
#: (evidence, state, Prometheus' answers): 32 MiB, far above what they hold.
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
#: The largest answer the relay reads from the forge (it answers a dispatch 204, no body) or the
#: Kubernetes API (one HTTPRoute): 1 MiB.
MAX_API_ANSWER_BYTES = 1024 * 1024
#: The deepest nesting a command accepts: what it writes is a few levels deep.
MAX_DEPTH = 64

# A JSON string, escapes included (the unrolled form: no backtracking per character).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_DOUBLE_MAX = sys.float_info.max


class JsonRefused(ValueError):
    """The text is not JSON, or is JSON out of the bounds; the message says which, in one line."""


def nesting_depth(text: str, limit: int) -> int:
    """How deeply arrays and objects nest in ``text`` (strings skipped), counting up to ``limit + 1``.

    A scan without recursion: brackets inside strings do not count. It does not
    check that the brackets match; the parser does that after it.
    """
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub('""', text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > 309:  # more digits than the largest double has
        raise JsonRefused(f"the number {text[:20]}… ({len(text)} digits) is out of range: the largest allowed is about 1.8e308")
    value = int(text)
    if abs(value) > _DOUBLE_MAX:
        raise JsonRefused(f"the number {text[:20]}… is out of range: the largest allowed is about 1.8e308")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {text[:40]} is out of range: the largest allowed is about 1.8e308")
    return value


def _constant(text: str) -> Any:
    raise JsonRefused(f"{text} is not a JSON number")


def loads(data: str | bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON document in ``data``; raises :class:`JsonRefused` (one line) for anything else."""
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > max_bytes:
        raise JsonRefused(f"{size} bytes, more than the {max_bytes} allowed")
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as err:
            raise JsonRefused(f"not UTF-8 text (byte {err.start})") from None
    depth = nesting_depth(data, max_depth)
    if depth > max_depth:
        raise JsonRefused(f"nested more than {max_depth} levels deep")
    try:
        return json.loads(data, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except JsonRefused:
        raise
    except RecursionError:  # cannot happen within max_depth; a last guard all the same
        raise JsonRefused(f"nested more than {max_depth} levels deep") from None
    except ValueError as err:
        raise JsonRefused(f"not JSON: {err}") from None
