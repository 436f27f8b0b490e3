"""Writing an output file whole or not at all, without trusting what is already beside it.

``rollout render --out`` and ``rollout evidence --out`` write each file to a
temporary file in the same folder and rename it over the target: the target is
at every moment the old file or the new one. The temporary file is created
exclusively under a random name (:func:`tempfile.mkstemp`: ``O_CREAT | O_EXCL``),
so nothing planted in the folder beforehand — a file or a symbolic link at a
name one could predict — is opened, followed or overwritten.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from rollout.model import jsontext
from rollout.model.errors import UsageError

#: How much of the target's name the temporary file's name repeats: with the
#: random part and the suffix it stays within a file name's 255 bytes.
_NAME_PART = 100


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with a file holding ``text`` (UTF-8), by one rename.

    The new file gets the permissions a plain ``open()`` would give it (0666 less
    the umask). Raises OSError as the file system reports it; the temporary file
    is removed then.
    """
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:_NAME_PART]}.", suffix=".tmp")
    try:
        os.fchmod(descriptor, 0o666 & ~_umask())
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            descriptor = -1
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        if descriptor >= 0:
            os.close(descriptor)
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def read_json_file(path: Path, option: str) -> Any:
    """The JSON document of a file given as ``option``; bad input (exit 2, one line) for anything else.

    Read within the bounds of :mod:`rollout.model.jsontext` (size, nesting,
    numbers), so no file, however deep, large or odd, ends in a traceback. At most
    the cap plus one byte is read: a FIFO or a device cannot fill the memory.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(jsontext.MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{option} {path}: no such file") from None
    except OSError as err:
        raise UsageError(f"{option} {path}: cannot be read: {err.strerror or err}") from None
    try:
        return jsontext.loads(raw)
    except jsontext.JsonRefused as err:
        raise UsageError(f"{option} {path}: {err}") from None
