"""Container image references, as registries read them.

A reference is ``[host[:port]/]path[:tag][@algorithm:hex]`` in the grammar of
the distribution project (``github.com/distribution/reference``), which Docker,
containerd, the kubelet and the registries implement; it is parsed by
``docker-image-py``, a port of that grammar and of its digest check
(``opencontainers/go-digest``):

- the repository path: components of lower-case letters and digits, joined by
  ``.``, ``_``, ``__`` or runs of ``-``, separated by ``/``; at most 255 characters;
- an optional registry host first (a component with a ``.`` or a ``:``, or
  ``localhost``), with an optional port;
- a tag of at most 128 characters: a letter, digit or ``_`` first, then letters,
  digits, ``_``, ``.`` and ``-``;
- a digest ``algorithm:hex`` with the algorithm's length in lower-case hex:
  ``sha256`` 64 characters, ``sha384`` 96, ``sha512`` 128; nothing else.

On top of the grammar, a first component with an upper-case letter and no ``.``
or ``:`` is refused: the grammar would read ``Example/genesis`` as the registry
host ``Example``, where a person means the repository ``Example/genesis``,
which no registry can hold. Whitespace and control characters are refused before
the parser sees the text.

A release is identified by its digest when the reference has one (see
:mod:`rollout.model.releases`): only a valid digest counts, so two references
count as the same release only when they carry the same real digest, or are the
same string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from docker_image import digest as _digest
from docker_image import reference as _reference
from pydantic import AfterValidator

#: What a reference may be, for messages.
GRAMMAR_HINT = (
    "[host[:port]/]path[:tag][@sha256:<64 hex>|@sha512:<128 hex>], the path in lower case, "
    "a tag of at most 128 letters, digits, '_', '.' or '-'"
)
#: Longer than any valid reference (a 255-character name, a 128-character tag, a sha512 digest, a host).
MAX_REFERENCE = 1024


class ImageRefError(ValueError):
    """Not an image reference; the message says why, in one line."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference: the name as written, its tag and digest (None when absent)."""

    name: str
    tag: str | None
    digest: str | None


def _shown(text: str) -> str:
    return repr(text[:100] + ("…" if len(text) > 100 else ""))


def parse(text: Any) -> ImageRef:
    """The reference in ``text``; raises :class:`ImageRefError` for anything else."""
    if not isinstance(text, str):
        raise ImageRefError(f"{text!r:.100} is not a container image reference (a string)")
    if not text:
        raise ImageRefError("an empty string is not a container image reference")
    if len(text) > MAX_REFERENCE:
        raise ImageRefError(f"{_shown(text)} is not a container image reference: longer than {MAX_REFERENCE} characters")
    if not text.isascii() or not text.isprintable() or any(c.isspace() for c in text):
        raise ImageRefError(f"{_shown(text)} is not a container image reference: whitespace, control or non-ASCII characters")
    first, slash, _ = text.partition("/")
    if slash and first != first.lower() and not any(c in first for c in ".:"):
        raise ImageRefError(f"{_shown(text)} is not a container image reference: the repository {text.split(':')[0].split('@')[0]!r} must be lower case")
    try:
        parsed = _reference.Reference.parse(text)
    except _reference.InvalidReference as err:
        raise ImageRefError(f"{_shown(text)} is not a container image reference: {_why(text, err)}") from None
    except _digest.InvalidDigest as err:
        raise ImageRefError(f"{_shown(text)} is not a container image reference: {_why(text, err)}") from None
    if not parsed["name"]:
        raise ImageRefError(f"{_shown(text)} is not a container image reference: it has no repository name")
    return ImageRef(parsed["name"], parsed["tag"], parsed["digest"])


def _why(text: str, err: Exception) -> str:
    if isinstance(err, _reference.NameContainsUppercase):
        return "the repository must be lower case"
    if isinstance(err, _digest.DigestInvalidLength):
        return "the digest has the wrong length for its algorithm (sha256: 64 hex characters, sha512: 128)"
    if isinstance(err, _digest.DigestUnsupported):
        return "the digest's algorithm is not sha256, sha384 or sha512"
    if isinstance(err, _digest.InvalidDigest):
        return "the digest is not lower-case hex"
    if isinstance(err, _reference.NameTooLong):
        return "the repository name is longer than 255 characters"
    return f"{err}; expected {GRAMMAR_HINT}"


def validate(value: Any) -> str:
    """A pydantic validator: ``value`` when it is a reference, else ValueError (one line)."""
    parse(value)
    return value


def validate_by_digest(value: Any) -> str:
    """A reference pinned by a sha256 digest (the relay's image)."""
    if parse(value).digest is None or not value.rsplit("@", 1)[1].startswith("sha256:"):
        raise ImageRefError(f"{_shown(value)} is not an image pinned by digest (<image>@sha256:<64 hex digits>)")
    return value


def digest_of(text: Any) -> str | None:
    """The digest of a valid reference that has one; None otherwise (no digest, or not a reference)."""
    try:
        return parse(text).digest
    except ImageRefError:
        return None


#: A field holding an image reference.
ImageReference = Annotated[str, AfterValidator(validate)]
#: A field holding an image reference pinned by a sha256 digest.
DigestImageReference = Annotated[str, AfterValidator(validate_by_digest)]
