"""Every stack's flag document is valid for flagd, by flagd's own schema."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURE, STACKS
from flagd_schema import flags_validator, validator_for
from upstream import reference
from rollout.build.flags import dumps, flag_document
from rollout.load.stack import load_stack

#: Upstream's own examples: {"positive"|"negative": {name: document}}.
EXAMPLES = reference("flagd", "examples.json")


@pytest.mark.parametrize("stack", STACKS)
def test_the_stacks_flag_document_validates_against_the_flagd_schema(stack):
    document = json.loads(dumps(flag_document(load_stack(stack, FIXTURE), stack)))
    errors = sorted(flags_validator().iter_errors(document), key=str)
    assert not errors, "\n".join(e.message for e in errors)


@pytest.mark.parametrize("name", sorted(EXAMPLES["negative"]))
def test_the_validator_rejects_upstreams_negative_example(name):
    document = EXAMPLES["negative"][name]
    assert list(validator_for(document).iter_errors(document))


@pytest.mark.parametrize("name", sorted(EXAMPLES["positive"]))
def test_the_validator_accepts_upstreams_positive_example(name):
    document = EXAMPLES["positive"][name]
    errors = list(validator_for(document).iter_errors(document))
    assert not errors, [e.message for e in errors]


def test_the_document_is_deterministic_and_starts_with_its_schema():
    config = load_stack("staging", FIXTURE)
    first, second = dumps(flag_document(config, "staging")), dumps(flag_document(config, "staging"))
    assert first == second
    document = json.loads(first)
    assert document["$schema"] == "https://flagd.dev/schema/v0/flags.json"
    assert "do not edit" in document["metadata"]["generated"]
    assert list(document["flags"]) == sorted(document["flags"])
