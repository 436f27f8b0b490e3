"""The pack as the engine first asks it: served from policies/catalogue.json, judging once per run.

The engine waits for the pack's list of policies before it runs the program, so the
pack answers from the committed catalogue and imports the gates beside the program's
run. These tests hold the catalogue to the gates, show a stale one fails closed, and
show the policies of one run build and judge the transition once, with the verdicts
each policy would reach on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from conftest import FIXTURE
from policies import catalogue, pack, rules, transition
from policies.rules import Context, Resource
from rollout.engine.harness import run_program

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)


@dataclass
class _Served:
    """A resource as CrossGuard hands it to a stack policy."""

    resource_type: str
    name: str
    props: dict
    urn: str


class _Args:
    def __init__(self, resources, config):
        self.resources, self._config = resources, config

    def get_config(self):
        return self._config


def _ask_every_policy(served_policies, resources, config_of) -> dict[str, list[str]]:
    """One run of the pack as AnalyzeStack makes it: each policy asked once, in order."""
    said: dict[str, list[str]] = {}
    for policy in served_policies:
        said[policy.name] = []
        policy.validate(_Args(resources, config_of(policy.name)), lambda message, urn=None, n=policy.name: said[n].append(message))
    return said


@pytest.fixture(scope="module")
def production():
    run = run_program("production", FIXTURE)
    return [_Served(r.type, r.name, r.inputs, r.urn) for r in run.resources]


def test_the_committed_catalogue_is_the_generated_one():
    assert catalogue.FILE.read_text() == catalogue.render(), \
        "regenerate: .venv/bin/python -m policies.catalogue > policies/catalogue.json"
    assert [entry["name"] for entry in catalogue.read()] == [p.name for p in rules.POLICIES]


@pytest.mark.parametrize(
    "stale",
    [
        lambda entries: [e for e in entries if e["name"] != "rollout-next-stage-only"],
        lambda entries: [dict(e, alwaysMandatory=False) if e["name"] == "rollout-soak-served" else e for e in entries],
        lambda entries: [dict(e, description="anything goes") if e["name"] == "rollout-canary-within-budget" else e
                         for e in entries],
        lambda entries: entries + [dict(entries[0], name="rollout-made-up")],
    ],
    ids=["a gate left out", "a gate made advisory-able", "a description changed", "a policy the gates lack"],
)
def test_a_stale_catalogue_fails_closed_in_every_policy(production, stale):
    served = stale(catalogue.read())
    assert served != catalogue.read()
    said = _ask_every_policy(pack.crossguard_policies(served), production, lambda name: {})
    assert set(said) == {entry["name"] for entry in served}
    for name, messages in said.items():
        assert len(messages) == 1 and "stale catalogue" in messages[0] and "python -m policies.catalogue" in messages[0], \
            (name, messages)


def test_the_pack_from_the_committed_catalogue_judges_as_each_policy_alone(production, monkeypatch):
    built = []
    real = transition.gate_transition
    monkeypatch.setattr(transition, "gate_transition", lambda state, context: built.append(context.now) or real(state, context))
    # An advance without evidence: every gate has something to say.
    resources = [Resource(r.resource_type, r.name, r.props, r.urn) for r in production]
    state = rules.rollout_state(resources)
    state["services"]["genesis"]["weight"] += 15
    advanced = [(_Served(r.resource_type, r.name, {"input": state}, r.urn) if r.name == rules.STATE_STASH else r)
                for r in production]
    said = _ask_every_policy(pack.crossguard_policies(catalogue.read()), advanced, lambda name: {})
    runs = len(built)
    assert 1 <= runs <= 2, f"the transition was built {runs} times in one run"  # gates' config, resource policies'
    assert len(set(built)) == 1, "the policies of one run judge at one instant"

    run_now = built[0]
    alone = {}
    for policy in rules.POLICIES:
        context = Context(now=run_now, config={})
        alone[policy.name] = [f"{resource}: {message}" for resource, message in
                              policy.check([Resource(r.resource_type, r.name, r.props, r.urn) for r in advanced], context)]
    assert said == alone
    assert any(said[p.name] for p in rules.POLICIES if p.always_mandatory), "the advance without evidence is refused"
    assert len(built) > runs, "each policy alone builds its own"


def test_a_policy_asked_again_starts_the_next_run(production):
    served = pack.crossguard_policies(catalogue.read())
    first = pack._run_of(served[0].name)
    assert pack._run_of(served[1].name) is first
    second = pack._run_of(served[0].name)
    assert second is not first and second.memo == {} and second.asked == {served[0].name}
