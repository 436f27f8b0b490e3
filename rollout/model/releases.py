"""Releases: what a rollout promotes.

A **release** is the canary's image reference. When the reference carries a
digest (``name@sha256:...``, with or without a tag), the digest identifies the
release: two references with the same digest are the same release, whatever
their names or tags say. Without a digest the whole reference (registry, name,
tag) is the release.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from rollout.model.images import ImageRefError, digest_of
from rollout.model.images import parse as parse_image


def release_of(image: Any) -> str | None:
    """The release an image reference identifies: its digest when it has a valid one, else itself.

    Only a digest of the reference grammar (:mod:`rollout.model.images`: a known
    algorithm, its length of lower-case hex) stands for the release; text after
    an ``@`` that is not one is part of the string, so two strings that are not
    the same never count as one release through a bogus "digest".
    """
    if not isinstance(image, str) or not image:
        return None
    return _release_of(image)


@lru_cache(maxsize=8192)
def _release_of(image: str) -> str:
    # Parsed once per reference: a fleet's gates compare the same few releases many times.
    return digest_of(image) or image


def same_release(a: Any, b: Any) -> bool:
    """True when two image references name the same release (see :func:`release_of`)."""
    return release_of(a) is not None and release_of(a) == release_of(b)


def canary_replicas(weight: int, stable_replicas: int, minimum: int, idle: bool = False) -> int:
    """The canary's replicas at ``weight`` percent: enough to carry its share.

    ``idle``: the stable track runs the canary's release (it was promoted), so
    the canary has nothing to try and runs no pods at 0 % until the next release.

    The stable track's replicas carry 100 % of the traffic, so the canary needs
    ``ceil(stable_replicas * weight / 100)`` to carry ``weight`` percent at the same
    load per pod; ``minimum`` (``canary.replicas``) is the least it ever runs,
    so at weight 0 it stays up and health-checked. The stable track keeps all its
    replicas at every weight, so a rollback never waits for pods to start.
    """
    if idle and weight == 0:
        return 0
    return max(minimum, math.ceil(stable_replicas * weight / 100))


def is_pinned(image: str) -> bool:
    """A valid reference with a digest, or with a tag other than latest."""
    try:
        parsed = parse_image(image)
    except ImageRefError:
        return False
    return parsed.digest is not None or parsed.tag not in (None, "latest")
