"""tests/reference/ holds what the tests validate against, for exactly the versions pinned."""

from __future__ import annotations

import runpy

from conftest import ROOT
from rollout.model import versions
from upstream import REFERENCE, chart_defaults, crd_schema

REFRESH = runpy.run_path(str(ROOT / "scripts" / "refresh-reference"))


def test_every_pinned_chart_has_its_defaults_in_the_reference_data():
    for key, (chart, version) in versions.CHARTS.items():
        assert (REFERENCE / "helm-values" / f"{chart}-{version}.json").is_file(), (
            f"{chart} {version} is pinned in rollout/model/versions.py but tests/reference/helm-values has no defaults "
            "for it: run scripts/refresh-reference (tests/reference/README.md)"
        )
        assert isinstance(chart_defaults(key), dict)


def test_the_reference_folder_holds_exactly_what_the_refresh_script_writes():
    written = {out for *_, out in REFRESH["CRDS"]} | {out for _, out in REFRESH["JSON_SCHEMAS"]}
    written |= {REFRESH["FLAGD_EXAMPLES"][1]} | {out for _, out in REFRESH["HELM_VALUES"]}
    present = {str(path.relative_to(REFERENCE)) for path in REFERENCE.rglob("*.json")}
    assert present == written


def test_the_stripped_schemas_keep_their_structure_and_lose_their_descriptions():
    schema = crd_schema("gateway.networking.k8s.io", "httproutes")
    assert schema["properties"]["spec"]["properties"]["rules"]["type"] == "array"
    assert "description" not in schema and "description" not in schema["properties"]["spec"]


def test_a_property_named_description_survives_the_stripping():
    strip = REFRESH["without_annotations"]
    schema = {
        "description": "an annotation",
        "properties": {"description": {"type": "string", "description": "the property's annotation"}},
        "items": [{"$comment": "x", "type": "integer"}],
    }
    assert strip(schema) == {"properties": {"description": {"type": "string"}}, "items": [{"type": "integer"}]}
