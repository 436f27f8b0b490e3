"""Every alert has its runbook and every runbook belongs to an alert; all are current."""

from __future__ import annotations

from alerts.catalogue import all_alerts
from alerts.runbooks import ACTIONS, RUNBOOKS, _base_name
from rollout.build.runbooks import runbooks
from conftest import FIXTURE, STACKS
from rollout.load.stack import load_stack


def test_every_alert_of_every_stack_has_a_runbook_with_what_to_do():
    for stack in STACKS:
        for alert in all_alerts(load_stack(stack, FIXTURE)):
            assert (RUNBOOKS / f"{alert.name}.md").is_file(), (stack, alert.name)
            assert ACTIONS[_base_name(alert.name)], alert.name


def test_every_runbook_belongs_to_an_alert():
    names = {alert.name for stack in STACKS for alert in all_alerts(load_stack(stack, FIXTURE))}
    for path in RUNBOOKS.glob("*.md"):
        assert path.stem in names or path.name == "README.md", path.name


def test_the_committed_runbooks_are_the_generated_ones():
    for name, text in runbooks().items():
        assert (RUNBOOKS / name).read_text() == text, f"regenerate: .venv/bin/python -m rollout.build.runbooks ({name})"


def test_every_runbook_says_what_it_means_how_to_confirm_and_what_to_do():
    for path in RUNBOOKS.glob("*.md"):
        if path.name == "README.md":
            continue
        text = path.read_text()
        for heading in ("## What it means", "## How to confirm", "## What to do", "```promql"):
            assert heading in text, (path.name, heading)
