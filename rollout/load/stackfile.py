"""Edit ``stacks/Pulumi.<stack>.yaml`` in place, keeping its comments and layout.

``rollout advance`` and ``rollout rollback`` append entries to a service's
``rollout.history``; ``rollout release`` and ``rollout promote`` also set a
track's image in the same edit; nothing else in the file changes, byte for byte.
The edit is a splice of the file's text: the new entry's lines are inserted
after the history's last entry in that history's own indentation and line
breaks, a value replaces only its own characters, and the result must load as
exactly the old document plus the change (a layout the splice does not handle
falls back to ruamel.yaml's round trip, which keeps comments). It is checked
with the project's own loader before it replaces the original, and written
atomically: a temporary file in the same folder, flushed to disk, then renamed
over the original, so a crash leaves either the old file or the new one, never
half of one. A stack file that is a symlink is edited through it: the file it
names is replaced, and the lock is the one beside that file, whichever name
was given.

Two edits of the same stack file at once (two operators, a CI job and an
operator) are serialised by :func:`locked`: an exclusive ``flock`` on
``stacks/.Pulumi.<stack>.yaml.lock``, held from the read of the file to the
rename, so the second edit reads the first one's result and no entry is lost.
The kernel releases the lock when its holder exits, killed or not, so a crash
never leaves a stale lock; a temporary file such a crash leaves behind is
removed by the next edit.
"""

from __future__ import annotations

import fcntl
import io
import os
import tempfile
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from rollout.model.errors import Busy, ConfigError
from rollout.load.stack import NS, display_path, read_stack_file, validate
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


@dataclass(frozen=True)
class TrackValue:
    """A value to set in one track of one service: ``<track>.<key>`` (e.g. ``canary.image``)."""

    service: str
    track: str
    key: str
    value: str


#: Indentations tried, as (mapping, sequence, dash offset): the shipped stack
#: files' own (2, 4, 2) first, then what `pulumi config set` and PyYAML write.
_LAYOUTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0))


def _yaml(layout: tuple[int, int, int] = _LAYOUTS[0]) -> YAML:
    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    mapping, sequence, offset = layout
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    # A wide line limit keeps long encrypted values on one line.
    yaml.width = 4096
    return yaml


def _dump(yaml: YAML, document: Any) -> str:
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def _layout_of(text: str) -> tuple[int, int, int] | None:
    """The indentation under which the file survives a load and dump unchanged, if any.

    ruamel.yaml writes one indentation for the whole file; a file that mixes
    several has none, and its edit re-indents it (comments still survive).
    """
    _, indent, dash = load_yaml_guess_indent(text)
    guessed = ((2, indent or 2, dash or 0), (indent or 2, indent or 2, dash or 0))
    for layout in (*_LAYOUTS[:1], *guessed, *_LAYOUTS[1:]):
        yaml = _yaml(layout)
        if _dump(yaml, yaml.load(text)) == text:
            return layout
    return None


def _service(document: Any, service: str, shown: str) -> tuple[int, CommentedMap]:
    config = document.get("config") if isinstance(document, CommentedMap) else None
    services = config.get(f"{NS}:services") if isinstance(config, CommentedMap) else None
    if not isinstance(services, CommentedSeq):
        raise ConfigError([f"{shown}: {NS}:services: is required (a list of services)"])
    for index, entry in enumerate(services):
        if isinstance(entry, CommentedMap) and entry.get("name") == service:
            return index, entry
    names = ", ".join(str(s.get("name")) for s in services if isinstance(s, CommentedMap))
    raise ConfigError([f"{shown}: {NS}:services: no service {service!r}; services: {names}"])


def _history(document: Any, service: str, shown: str) -> CommentedSeq:
    index, entry = _service(document, service, shown)
    history = (entry.get("rollout") or {}).get("history")
    if not isinstance(history, CommentedSeq):
        raise ConfigError([f"{shown}: {NS}:services[{index}].rollout.history: must be a list"])
    return history


def _set_track(document: Any, change: TrackValue, shown: str) -> None:
    index, entry = _service(document, change.service, shown)
    track = entry.get(change.track)
    if not isinstance(track, CommentedMap):
        raise ConfigError([f"{shown}: {NS}:services[{index}].{change.track}: must be a mapping"])
    value = DoubleQuotedScalarString(change.value) if isinstance(track.get(change.key), DoubleQuotedScalarString) else change.value
    if change.key in track:
        track[change.key] = value
    else:
        # Right after image: a comment after the track's last key stays where it is.
        keys = list(track.keys())
        track.insert(keys.index("image") + 1 if "image" in keys else len(keys), change.key, value)


def _append(history: CommentedSeq, entry: NewEntry) -> None:
    item = CommentedMap()
    item["weight"] = entry.weight
    # Quoted like the existing entries, so YAML never reads it as a timestamp type.
    item["startedAt"] = DoubleQuotedScalarString(format_time(entry.started_at))
    if entry.release:
        item["release"] = entry.release
    if entry.plan:
        item["plan"] = entry.plan
    if entry.reason:
        item["reason"] = DoubleQuotedScalarString(entry.reason)
    # Whatever follows the list (blank lines, the next key's comment) is attached
    # by ruamel to the last item's last value; move it to the new last item so it
    # stays after the list instead of landing between two entries.
    trailing = None
    if len(history) and isinstance(history[-1], CommentedMap) and len(history[-1]):
        last = history[-1]
        key = list(last.keys())[-1]
        slots = last.ca.items.get(key)
        token = slots[2] if slots and len(slots) > 2 else None
        if isinstance(token, CommentToken):
            # An end-of-line comment ("# ...") stays with its entry; only the lines
            # after it move.
            # ruamel reads a leading newline as "no comment on this line".
            own, _, rest = token.value.partition("\n")
            if rest:
                token.value = own + "\n" if own else ""
                if not own:
                    slots[2] = None
                trailing = [None, None, CommentToken("\n" + rest, token.start_mark, None), None]
    history.append(item)
    if trailing is not None:
        item.ca.items[list(item.keys())[-1]] = trailing


def edited_text(
    text: str, entries: list[NewEntry], shown: str = "stack file", values: list[TrackValue] | None = None
) -> str:
    """The stack file's text with ``values`` set and ``entries`` appended to their services' histories.

    Only the lines of the change are written: the new entries are inserted as
    text after the last entry of each history, in the history's own indentation
    and line breaks, and a track's value replaces just the value's characters.
    Every other byte (comments, CRLF, a BOM, trailing spaces, a final ``...``,
    anchors) stays. The result is checked to load as exactly the old document
    plus the change; a layout the splice does not handle is rewritten with
    ruamel.yaml's round trip instead (see :func:`reindents`).
    """
    spliced = _spliced(text, entries, values or [], shown)
    _ROUND_TRIPPED.set(spliced is None)
    if spliced is not None:
        return spliced
    return _round_trip(text, entries, shown, values)


#: Whether the last :func:`edited_text` rewrote the file as a whole (a layout the splice leaves alone).
_ROUND_TRIPPED: ContextVar[bool] = ContextVar("rollout_round_tripped", default=False)


def _round_trip(
    text: str, entries: list[NewEntry], shown: str, values: list[TrackValue] | None = None
) -> str:
    yaml = _yaml(_layout_of(text) or _LAYOUTS[0])
    document = yaml.load(text)
    for change in values or ():
        _set_track(document, change, shown)
    for entry in entries:
        _append(_history(document, entry.service, shown), entry)
    return _dump(yaml, document)


# --- editing by splicing text -------------------------------------------------------

import json as _json
import re as _re

import yaml as _pyyaml

from rollout.load import strict_yaml

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
    import bisect

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
    import copy

    expected = copy.deepcopy(document)
    services = expected["config"][f"{NS}:services"]
    for change in values:
        service = next(s for s in services if s.get("name") == change.service)
        service[change.track][change.key] = change.value
    for entry in entries:
        service = next(s for s in services if s.get("name") == entry.service)
        item: dict[str, Any] = {"weight": entry.weight, "startedAt": format_time(entry.started_at)}
        if entry.release:
            item["release"] = entry.release
        if entry.plan:
            item["plan"] = entry.plan
        if entry.reason:
            item["reason"] = entry.reason
        service["rollout"]["history"].append(item)
    return expected


def _spliced(text: str, entries: list[NewEntry], values: list[TrackValue], shown: str) -> str | None:
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


def reindents(text: str) -> bool:
    """True when an edit of this file would re-indent lines it does not touch."""
    return _layout_of(text) is None


#: Seconds an edit waits for another edit of the same stack file to finish.
LOCK_WAIT_S = 30.0


def lock_path(path: Path) -> Path:
    """The lock file beside a stack file (ignored by git)."""
    return path.with_name(f".{path.name}.lock")


def _temporaries(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


@contextmanager
def locked(path: Path, root: Path | None = None, wait_s: float | None = None) -> Iterator[None]:
    """Hold the edit lock of the stack file at ``path`` for the ``with`` block.

    Waits up to ``wait_s`` seconds (default :data:`LOCK_WAIT_S`) for another holder, then raises
    :class:`~rollout.model.errors.Busy` naming the file. Read the file inside the
    block, not before: what was read before may be what the other edit replaced.
    """
    wait_s = LOCK_WAIT_S if wait_s is None else wait_s
    # Every name of the file takes the same lock: the one beside the file a symlink names.
    shown_path, path = path, path.resolve()
    descriptor = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Busy(
                        f"{display_path(shown_path, root)}: another `rollout advance` or `rollout rollback` has been "
                        f"editing it for over {wait_s:g}s (lock {lock_path(path).name}); nothing was changed, try again"
                    ) from None
                time.sleep(0.05)
        # Under the lock no edit is under way: a temporary file left here is a
        # crashed edit's, never renamed; the stack file is the old one.
        for leftover in _temporaries(path):
            leftover.unlink(missing_ok=True)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def append_history(
    path: Path, entries: list[NewEntry], root: Path | None = None, values: list[TrackValue] | None = None
) -> bool:
    """Append ``entries`` to the stack file at ``path`` (and set ``values``, e.g. a track's
    image), atomically: one edit, all of it or nothing.

    A symlink is followed: the file it names is edited, and keeps being the
    link's target. The result is validated with the project's loader first
    (ConfigError naming the file when it would not load); the original is
    untouched on any failure. Returns True when the edit could not keep the
    file line by line and rewrote it as a whole (comments kept).
    """
    shown = display_path(path, root)
    real = path.resolve()
    # Bytes, decoded: CRLF line breaks and a BOM are text like any other.
    text = real.read_bytes().decode("utf-8")
    new_text = edited_text(text, entries, shown, values)
    rewritten = _ROUND_TRIPPED.get() and reindents(text)
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", newline="", dir=real.parent, prefix=f".{real.name}.", suffix=".tmp", delete=False
    )
    temporary = Path(handle.name)
    try:
        with handle:
            handle.write(new_text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            validate(read_stack_file(temporary, root), shown)
        except ConfigError as err:
            raise ConfigError([p.replace(display_path(temporary, root), shown) for p in err.problems]) from None
        os.chmod(temporary, real.stat().st_mode & 0o7777)
        os.replace(temporary, real)
    finally:
        if temporary.exists():
            temporary.unlink()
    _sync_folder(real.parent)
    return rewritten


def _sync_folder(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk too.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
