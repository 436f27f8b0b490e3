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
