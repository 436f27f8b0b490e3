"""The rollout state: what the program exports and the gates compare."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from conftest import FIXTURE, STACKS
from rollout.load.stack import load_stack
from rollout.model.plans import BUILTIN_PLANS
from rollout.model.state import rollout_state, service_state, status, with_entry
from rollout.model.time import format_time, parse_time

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
SAFE = [{"weight": s.weight, "soakSeconds": int(s.soak.total_seconds())} for s in BUILTIN_PLANS["safe"].stages]
INSTANT = [{"weight": s.weight, "soakSeconds": int(s.soak.total_seconds())} for s in BUILTIN_PLANS["instant"].stages]


def entries(*pairs):
    return [{"weight": w, "startedAt": t, "reason": None} for w, t in pairs]


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_has_a_json_state_matching_its_stack_file(stack):
    config = load_stack(stack, FIXTURE)
    state = rollout_state(config, stack, NOW)
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    assert state["stack"] == stack and state["tier"] == config.tier
    assert state["promotesFrom"] == config.promotes_from
    assert state["canary"]["minRequests"] == config.canary.min_requests
    assert state["canary"]["evidenceMaxAgeSeconds"] == config.canary.evidence_max_age.total_seconds()
    for service in config.services:
        got = state["services"][service.name]
        assert got["weight"] == service.rollout.weight
        assert [e["weight"] for e in got["history"]] == [e.weight for e in service.rollout.history]
        assert parse_time(got["stageStartedAt"]) == service.rollout.current.started_at
        assert [s["weight"] for s in got["stages"]] == list(service.rollout.plan_model.weights)


def test_staging_at_10_may_go_to_25_a_day_after_it_entered_10():
    state = rollout_state(load_stack("staging", FIXTURE), "staging", NOW)["services"]["genesis"]
    assert (state["weight"], state["nextWeight"]) == (10, 25)
    assert state["stageStartedAt"] == "2026-11-18T09:00:00Z"
    assert state["earliestAdvanceAt"] == "2026-11-19T09:00:00Z"
    assert (state["completesAt"], state["complete"]) == (None, False)


def test_status_counts_time_in_stage_and_the_earliest_advance():
    service = service_state("genesis", "safe", SAFE, entries((0, "2026-11-25T00:00:00Z"), (5, "2026-11-26T06:00:00Z")), NOW)
    st = status(service, NOW)
    assert (st.weight, st.stage_number, st.stage_count, st.next_weight) == (5, 2, 7, 10)
    assert st.time_in_stage == timedelta(hours=6)
    assert st.earliest_advance_at == datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc)
    assert not st.soak_served and not st.complete
    assert status(service, NOW + timedelta(hours=18)).soak_served


def test_the_safe_plan_completes_48_hours_after_reaching_100():
    history = entries((0, "2026-11-01T00:00:00Z"), (100, "2026-11-25T00:00:00Z"))
    before = service_state("genesis", "safe", SAFE, history, NOW)
    assert before["nextWeight"] is None and before["earliestAdvanceAt"] is None
    assert before["completesAt"] == "2026-11-27T00:00:00Z" and before["complete"] is False
    after = service_state("genesis", "safe", SAFE, history, datetime(2026, 11, 27, tzinfo=timezone.utc))
    assert after["complete"] is True
    assert status(before, datetime(2026, 11, 27, tzinfo=timezone.utc)).complete


def test_the_instant_plan_goes_from_0_to_100_after_a_minute():
    service = service_state("genesis", "instant", INSTANT, entries((0, "2026-11-26T11:59:30Z")), NOW)
    assert service["nextWeight"] == 100
    assert service["earliestAdvanceAt"] == "2026-11-26T12:00:30Z"


def test_a_rollback_entry_becomes_the_current_stage_with_its_reason():
    state = rollout_state(load_stack("staging", FIXTURE), "staging", NOW)
    rolled = with_entry(state, "genesis", 0, NOW, "error budget burning", NOW)
    service = rolled["services"]["genesis"]
    assert (service["weight"], service["stageStartedAt"], service["nextWeight"]) == (0, "2026-11-26T12:00:00Z", 5)
    assert service["history"][-1] == {"weight": 0, "startedAt": "2026-11-26T12:00:00Z", "reason": "error budget burning",
                                      "release": "ghcr.io/example/genesis:1.5.0", "plan": "safe"}
    assert state["services"]["genesis"]["weight"] == 10, "the original state is not changed"


def test_switched_on_safety_flags_are_listed():
    config = load_stack("staging", FIXTURE)
    flags = dict(config.flags)
    flags["read_only_mode"] = flags["read_only_mode"].model_copy(update={"enabled": True, "reason": "db failover"})
    state = rollout_state(config.model_copy(update={"flags": flags}), "staging", NOW)
    assert state["safetyFlagsOn"] == ["read_only_mode"]


@pytest.mark.parametrize("text", ["2026-11-20T09:00:00Z", "2026-11-20T09:00:00z", "2026-11-20T10:00:00+01:00"])
def test_a_stack_files_time_and_the_state_read_and_write_a_time_alike(text):
    """rollout.model.time is the one reader and writer: the config's Timestamp agrees with it."""
    from rollout.model.config import HistoryEntry

    entry = HistoryEntry.model_validate({"weight": 0, "startedAt": text})
    assert entry.started_at == parse_time(text)
    assert entry.model_dump(by_alias=True)["startedAt"] == format_time(parse_time(text)) == "2026-11-20T09:00:00Z"
