"""A stack-file edit as splices of the file's text: only the lines of the change are written.

New history entries are inserted after the last entry of their history, in that
history's own indentation and line breaks; a track's value replaces only its own
characters. :func:`spliced` checks that the result loads as exactly the old
document plus the change, and answers None for a layout it does not handle, which
:mod:`rollout.load.stackfile` then rewrites with ruamel.yaml's round trip.
"""

from __future__ import annotations

import bisect
import copy
import json as _json
import re as _re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml as _pyyaml

from rollout.load import strict_yaml
from rollout.load.stack import NS
from rollout.model.time import format_time


@dataclass(frozen=True)
class NewEntry:
    """A history entry to append to one service."""

    service: str
    weight: int
    started_at: datetime
    reason: str | None = None
    #: The canary's image in the new stage, and the plan it is entered under.
    release: str | None = None
    plan: str | None = None
    #: ``override`` or ``resume`` (None: a stage), who recorded it, and an override's end.
    kind: str | None = None
    by: str | None = None
    until: datetime | None = None

    def item(self) -> dict[str, Any]:
        """The entry as the history holds it, in the order it is written; unset fields left out."""
        item: dict[str, Any] = {"weight": self.weight, "startedAt": format_time(self.started_at)}
        optional = {"release": self.release, "plan": self.plan, "reason": self.reason, "kind": self.kind,
                    "by": self.by, "until": format_time(self.until) if self.until else None}
        item.update({key: value for key, value in optional.items() if value})
        return item


@dataclass(frozen=True)
class TrackValue:
    """A value to set in one track of one service: ``<track>.<key>`` (e.g. ``canary.image``)."""

    service: str
    track: str
    key: str
    value: str


# The line breaks libyaml counts lines by.
_BREAK = _re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_PLAIN_SAFE = _re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@+=-]*(?::[A-Za-z0-9._/@+=-]+)*")


class _Unhandled(Exception):
    """A layout the splice leaves to the round trip."""


class _Text:
    """Offsets of (line, column) marks in the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in _BREAK.finditer(text)]
        self.bom = 1 if text.startswith("\ufeff") else 0

    def offset(self, mark: Any) -> int:
        return self.starts[mark.line] + mark.column + (self.bom if mark.line == 0 else 0)

    def line_end(self, offset: int) -> int:
        """The offset just after the line break that ends the line holding ``offset``."""
        match = _BREAK.search(self.text, offset)
        return match.end() if match else len(self.text)

    def newline(self, offset: int) -> str:
        match = _BREAK.search(self.text, offset)
        return match.group() if match else "\n"


def _scalar_text(value: str, quoted: bool = False) -> str:
    """``value`` as YAML: plain when it reads back as the same text, else double-quoted."""
    if not quoted and _PLAIN_SAFE.fullmatch(value):
        try:
            if _pyyaml.load(f"k: {value}", Loader=strict_yaml.StrictLoader) == {"k": value}:  # noqa: S506
                return value
        except _pyyaml.YAMLError:
            pass
    escaped = _json.dumps(value, ensure_ascii=False)
    # JSON leaves some characters YAML does not allow unescaped (C1 controls, line separators, BOM).
    return "".join(c if c.isprintable() or c in " " else f"\\u{ord(c):04x}" for c in escaped)


def _get(node: Any, key: str) -> Any:
    if not isinstance(node, _pyyaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, _pyyaml.ScalarNode) and key_node.value == key:
            return value_node
    return None


def _service_node(root: Any, service: str) -> Any:
    services = _get(_get(root, "config"), f"{NS}:services")
    if not isinstance(services, _pyyaml.SequenceNode):
        raise _Unhandled
    for item in services.value:
        name = _get(item, "name")
        if isinstance(name, _pyyaml.ScalarNode) and name.value == service:
            return item
    raise _Unhandled


def _last_end(node: Any) -> Any:
    """The end mark of the last character of a node's content (comments after it excluded)."""
    if isinstance(node, _pyyaml.ScalarNode) or getattr(node, "flow_style", False):
        return node.end_mark
    if not node.value:
        return node.end_mark
    last = node.value[-1]
    return _last_end(last[1] if isinstance(node, _pyyaml.MappingNode) else last)


def _entry_lines(entry: NewEntry) -> list[tuple[str, str]]:
    fields = [("weight", str(entry.weight)), ("startedAt", _scalar_text(format_time(entry.started_at), quoted=True))]
    if entry.release:
        fields.append(("release", _scalar_text(entry.release)))
    if entry.plan:
        fields.append(("plan", _scalar_text(entry.plan)))
    if entry.reason:
        fields.append(("reason", _scalar_text(entry.reason, quoted=True)))
    if entry.kind:
        fields.append(("kind", _scalar_text(entry.kind)))
    if entry.by:
        fields.append(("by", _scalar_text(entry.by, quoted=True)))
    if entry.until:
        fields.append(("until", _scalar_text(format_time(entry.until), quoted=True)))
    return fields


def _history_splice(where: _Text, root: Any, entry: NewEntry) -> tuple[int, int, str]:
    history = _get(_get(_service_node(root, entry.service), "rollout"), "history")
    if not isinstance(history, _pyyaml.SequenceNode):
        raise _Unhandled
    fields = _entry_lines(entry)
    if history.flow_style:
        close = where.offset(history.end_mark) - 1
        if where.text[close] != "]":
            raise _Unhandled
        item = "{" + ", ".join(f"{k}: {v}" for k, v in fields) + "}"
        return close, 0, (", " if history.value else "") + item
    last = history.value[-1] if history.value else None
    if not isinstance(last, _pyyaml.MappingNode) or last.flow_style or not last.value:
        raise _Unhandled
    key_column = last.start_mark.column
    line_start = where.starts[last.start_mark.line] + (where.bom if last.start_mark.line == 0 else 0)
    before_key = where.text[line_start:line_start + key_column]
    dash = before_key.rfind("-")
    if dash < 0 or before_key[:dash].strip() or before_key[dash + 1:].strip():
        raise _Unhandled  # the dash is not on the line of the entry's first key
    end = where.offset(_last_end(last))
    # A value that ends at a line's start (a block scalar) already took its line break.
    at = end if end > 0 and where.starts[_line_of(where, end)] == end else where.line_end(end)
    newline = where.newline(where.offset(last.start_mark))
    lead = "" if at > 0 and where.text[at - 1] in "\n\r\x85\u2028\u2029" else newline
    first, *rest = fields
    lines = [f"{before_key[:dash]}-{before_key[dash + 1:]}{first[0]}: {first[1]}"]
    lines += [f"{' ' * key_column}{k}: {v}" for k, v in rest]
    return at, 0, lead + newline.join(lines) + newline


def _line_of(where: _Text, offset: int) -> int:
    return bisect.bisect_right(where.starts, offset) - 1


def _value_splice(where: _Text, root: Any, change: TrackValue) -> tuple[int, int, str]:
    track = _get(_service_node(root, change.service), change.track)
    if not isinstance(track, _pyyaml.MappingNode):
        raise _Unhandled
    current = _get(track, change.key)
    if current is not None:
        if not isinstance(current, _pyyaml.ScalarNode) or current.style not in (None, "", '"', "'"):
            raise _Unhandled
        start, end = where.offset(current.start_mark), where.offset(current.end_mark)
        quoted = current.style in ('"', "'")
        return start, end - start, _scalar_text(change.value, quoted=quoted)
    image = _get(track, "image")
    if not isinstance(image, _pyyaml.ScalarNode):
        raise _Unhandled
    text = _scalar_text(change.value)
    end = where.offset(image.end_mark)
    if track.flow_style:
        return end, 0, f", {change.key}: {text}"
    key_node = next(k for k, v in track.value if v is image)
    if key_node.start_mark.line != image.end_mark.line:
        raise _Unhandled
    newline = where.newline(end)
    at = where.line_end(end)
    lead = "" if at > 0 and where.text[at - 1] in "\n\r\x85\u2028\u2029" else newline
    return at, 0, f"{lead}{' ' * key_node.start_mark.column}{change.key}: {text}{newline}"


def _expected(document: Any, entries: list[NewEntry], values: list[TrackValue]) -> Any:
    expected = copy.deepcopy(document)
    services = expected["config"][f"{NS}:services"]
    for change in values:
        service = next(s for s in services if s.get("name") == change.service)
        service[change.track][change.key] = change.value
    for entry in entries:
        service = next(s for s in services if s.get("name") == entry.service)
        item = entry.item()
        service["rollout"]["history"].append(item)
    return expected


def spliced(text: str, entries: list[NewEntry], values: list[TrackValue], shown: str) -> str | None:
    """The edit as splices of ``text``, or None when its layout is left to the round trip."""
    try:
        root = _pyyaml.compose(text, Loader=strict_yaml.SafeLoader)
        where = _Text(text)
        splices = [_value_splice(where, root, change) for change in values]
        splices += [_history_splice(where, root, entry) for entry in entries]
    except (_Unhandled, _pyyaml.YAMLError, IndexError, StopIteration):
        return None
    new = text
    # From the end, so each offset still points into the original text; entries
    # for one history land in order.
    for at, cut, insert in sorted(splices, key=lambda s: s[0], reverse=True):
        new = new[:at] + insert + new[at + cut:]
    if not entries and not values:
        return new
    # The splice is right only if the file now holds exactly the old document plus the change.
    try:
        # The old document from the nodes already composed: no second parse.
        before = strict_yaml.StrictLoader("").construct_document(root)
        after = _pyyaml.load(new, Loader=strict_yaml.StrictLoader)  # noqa: S506
        if after != _expected(before, entries, values):
            return None
    except (_pyyaml.YAMLError, KeyError, TypeError, AttributeError, StopIteration):
        return None
    return new


