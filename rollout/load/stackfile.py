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
from pathlib import Path
from typing import Any, Iterator

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from rollout.model.errors import Busy, ConfigError
from rollout.load import splice
from rollout.load.splice import NewEntry, TrackValue
from rollout.load.stack import NS, display_path, read_stack_file, validate


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


#: The history fields written quoted.
_QUOTED = frozenset({"startedAt", "reason", "by", "until"})


def _append(history: CommentedSeq, entry: NewEntry) -> None:
    item = CommentedMap()
    for key, value in entry.item().items():
        # Times quoted like the existing entries, so YAML never reads them as a timestamp type;
        # free text quoted, so no reason or name is read as anything but a string.
        item[key] = DoubleQuotedScalarString(value) if key in _QUOTED else value
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
    spliced = splice.spliced(text, entries, values or [], shown)
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
