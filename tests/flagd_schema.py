"""flagd's JSON schemas (tests/reference/flagd) as ready validators, offline."""

from __future__ import annotations

import json
from functools import lru_cache

import jsonschema
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from upstream import reference

SCHEMAS = ("flags.json", "targeting.json", "flagd.json")


@lru_cache(maxsize=1)
def _documents() -> dict[str, dict]:
    return {name: reference("flagd", name) for name in SCHEMAS}


def _retrieve(uri: str) -> Resource:
    # flags.json refers to "./targeting.json". Its root carries "$ref" beside
    # "$id", and draft-07 ignores siblings of "$ref", so that relative reference
    # arrives unresolved against the $id: map it by file name to the local copy.
    name = uri.rsplit("/", 1)[-1]
    if name in SCHEMAS:
        return Resource.from_contents(_documents()[name])
    raise NoSuchResource(ref=uri)


@lru_cache(maxsize=2)
def validator(schema: str = "flags.json") -> jsonschema.Draft7Validator:
    """A draft-07 validator for ``flags.json`` (providers) or ``flagd.json`` (the daemon)."""
    documents = _documents()
    registry = Registry(retrieve=_retrieve).with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in documents.values()
    )
    return jsonschema.Draft7Validator(documents[schema], registry=registry)


def flags_validator() -> jsonschema.Draft7Validator:
    return validator("flags.json")


def validator_for(document: dict) -> jsonschema.Draft7Validator:
    """The schema an upstream example names in its ``$schema`` (flags.json or flagd.json)."""
    named = str(document.get("$schema", "flags.json")).rsplit("/", 1)[-1]
    return validator("flagd.json" if named == "flagd.json" else "flags.json")
