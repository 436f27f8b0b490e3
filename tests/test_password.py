"""The Grafana admin password's dynamic provider (components/password.py)."""

from __future__ import annotations

import string

import pytest

from components.password import ALPHABET, GeneratedPassword, _PasswordProvider


def test_create_draws_a_fresh_password_of_the_length_from_letters_and_digits():
    provider = _PasswordProvider()
    first = provider.create({"length": 32})
    second = provider.create({"length": 32})
    assert len(first.outs["result"]) == 32
    assert set(first.outs["result"]) <= set(string.ascii_letters + string.digits) == set(ALPHABET)
    assert first.outs["result"] != second.outs["result"]
    assert first.id != second.id


def test_only_a_length_change_replaces_it_and_an_update_keeps_the_value():
    provider = _PasswordProvider()
    kept = provider.diff("id", {"length": 32, "result": "x" * 32}, {"length": 32})
    assert not kept.changes and not kept.replaces
    replaced = provider.diff("id", {"length": 32, "result": "x" * 32}, {"length": 40})
    assert replaced.changes and replaced.replaces == ["length"]
    assert provider.update("id", {"length": 32, "result": "kept"}, {"length": 32}).outs["result"] == "kept"


@pytest.mark.parametrize("length", [0, 15, 257])
def test_a_length_outside_16_to_256_is_refused(length):
    with pytest.raises(ValueError, match="between 16 and 256"):
        GeneratedPassword("p", length=length)
