"""The upstream reference data of tests/reference/ (see its README), loaded once."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from rollout.model import versions

REFERENCE = Path(__file__).resolve().parent / "reference"


@lru_cache(maxsize=None)
def reference(*parts: str):
    """A JSON document below tests/reference/, parsed."""
    return json.loads(REFERENCE.joinpath(*parts).read_text())


def crd_schema(group: str, plural: str, version: str = "v1") -> dict:
    """The openAPIV3Schema of one served version of a CRD (descriptions removed)."""
    return reference("crds", f"{group}_{plural}.{version}.json")


def chart_defaults(key: str) -> dict:
    """The default values of the chart rollout pins under ``key`` in rollout/model/versions.py."""
    chart, version = versions.CHARTS[key]
    return reference("helm-values", f"{chart}-{version}.json")
