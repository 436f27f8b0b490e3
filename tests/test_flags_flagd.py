"""Every flag of every stack, evaluated by the OpenFeature flagd provider in-process.

The rendered flags.json is loaded by flagd's own in-process evaluator (json-logic
with flagd's fractional and $flagd.timestamp), so these tests show what services
will see, not what our builder believes.
"""

from __future__ import annotations

import types
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.contrib.provider.flagd.resolvers.process import targeting as flagd_targeting
from openfeature.evaluation_context import EvaluationContext

from conftest import FIXTURE, STACKS
from rollout.model.config import AllAtOnceFlag, CanaryFlag, PercentageFlag, ProgressiveFlag
from rollout.load.stack import load_stack
from rollout.build.render import render

KEYS = [f"user-{i}" for i in range(10_000)]
TOLERANCE = 2.0  # percentage points, over 10,000 targeting keys


def _flags_of(strategy: type) -> list:
    return [
        pytest.param(stack, key, id=f"{stack}:{key}")
        for stack in STACKS
        for key, flag in sorted(load_stack(stack, FIXTURE).flags.items())
        if isinstance(flag, strategy)
    ]


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    """One OpenFeature client per stack (domain = stack), each backed by flagd
    in-process reading that stack's rendered flags.json."""
    out: dict = {}
    for stack in STACKS:
        config = load_stack(stack, FIXTURE)
        folder = tmp_path_factory.mktemp(f"render-{stack}")
        render(config, stack, folder)
        provider = FlagdProvider(
            resolver_type=ResolverType.IN_PROCESS,
            offline_flag_source_path=str(Path(folder, "flags", "flags.json")),
        )
        api.set_provider_and_wait(provider, domain=stack)
        client = api.get_client(domain=stack)
        details = client.get_boolean_details("orchestration", False)
        assert details.error_code is None, details.error_message
        out[stack] = (config, client)
    yield out
    api.shutdown()


def share_on(client, key: str, attributes: dict | None = None) -> float:
    """Percentage of KEYS for which flagd turns ``key`` on."""
    on = sum(
        client.get_boolean_value(key, False, EvaluationContext(targeting_key=k, attributes=dict(attributes or {})))
        for k in KEYS
    )
    return 100.0 * on / len(KEYS)


@pytest.fixture
def clock(monkeypatch):
    """Sets the time flagd's targeting reads for $flagd.timestamp.

    flagd's in-process evaluator stamps each evaluation with int(time.time());
    replacing the clock of that module (only) moves flagd through a schedule.
    """
    assert hasattr(flagd_targeting, "time"), "flagd's targeting module no longer reads time.time"

    def set_to(moment: datetime) -> None:
        monkeypatch.setattr(flagd_targeting, "time", types.SimpleNamespace(time=lambda: moment.timestamp()))

    return set_to


@pytest.mark.parametrize("stack, key", _flags_of(AllAtOnceFlag))
def test_an_on_or_off_flag_evaluates_as_configured(clients, stack, key):
    config, client = clients[stack]
    flag = config.flags[key]
    for context in (EvaluationContext(), EvaluationContext("someone", {"track": "canary"})):
        details = client.get_boolean_details(key, not flag.enabled, context)
        assert details.error_code is None, (stack, key, details.error_message)
        assert details.value is flag.enabled, (stack, key)


@pytest.mark.parametrize("stack, key", _flags_of(PercentageFlag))
def test_a_percentage_flag_turns_on_its_share_of_keys_and_is_stable_per_key(clients, stack, key):
    config, client = clients[stack]
    flag = config.flags[key]
    assert abs(share_on(client, key) - flag.percentage) <= TOLERANCE, (stack, key)
    answers = [client.get_boolean_value(key, False, EvaluationContext(targeting_key="user-42")) for _ in range(5)]
    assert len(set(answers)) == 1, "one key must always get the same answer"


@pytest.mark.parametrize("stack, key", _flags_of(ProgressiveFlag))
def test_a_progressive_flag_follows_its_schedule_before_inside_and_after_each_step(clients, clock, stack, key):
    config, client = clients[stack]
    flag = config.flags[key]
    previous = 0
    for step in flag.steps:
        begins = flag.start + step.after
        clock(begins - timedelta(seconds=1))
        assert abs(share_on(client, key) - previous) <= TOLERANCE, (stack, key, "before", begins)
        clock(begins + timedelta(seconds=1))
        assert abs(share_on(client, key) - step.percentage) <= TOLERANCE, (stack, key, "inside", begins)
        previous = step.percentage
    clock(flag.start + flag.steps[-1].after + timedelta(days=30))
    assert abs(share_on(client, key) - flag.steps[-1].percentage) <= TOLERANCE, (stack, key, "after")


@pytest.mark.parametrize("stack, key", _flags_of(CanaryFlag))
def test_a_canary_flag_is_on_only_for_the_canary_track(clients, stack, key):
    config, client = clients[stack]
    flag = config.flags[key]
    assert abs(share_on(client, key, {"track": "canary"}) - flag.percentage) <= TOLERANCE, (stack, key)
    assert share_on(client, key, {"track": "stable"}) == 0.0, (stack, key)
    assert share_on(client, key) == 0.0, (stack, key, "no track")


def test_at_least_one_stack_exercises_each_strategy():
    strategies = {flag.strategy for stack in STACKS for flag in load_stack(stack, FIXTURE).flags.values()}
    assert strategies == {"all_at_once", "percentage", "progressive", "canary"}


def test_the_progressive_schedule_is_written_as_timestamp_targeting(tmp_path):
    # The schedule lives in the document, so the flag moves with no redeploy.
    import json

    config = load_stack("staging", FIXTURE)
    render(config, "staging", tmp_path)
    flag = json.loads((tmp_path / "flags" / "flags.json").read_text())["flags"]["phase_4_deployment"]
    conditions = [c for c in flag["targeting"]["if"] if isinstance(c, dict) and ">=" in c]
    assert [c[">="][0] for c in conditions] == [{"var": "$flagd.timestamp"}] * 7
    start = datetime.fromisoformat("2026-11-20T09:00:00+00:00")
    assert conditions[-1][">="][1] == int(start.timestamp())


def test_a_canary_flag_follows_its_services_weight_to_everyone_at_100(tmp_path):
    from rollout.build.flags import flag_definition
    from rollout.model.config import CanaryFlag

    flag = CanaryFlag.model_validate({"strategy": "canary", "service": "genesis"})
    during = flag_definition(flag, weight=25)
    complete = flag_definition(flag, weight=100)
    assert during["metadata"]["weight"] == 25 and during["defaultVariant"] == "off"
    assert complete["metadata"]["weight"] == 100 and complete["defaultVariant"] == "on" and "targeting" not in complete
