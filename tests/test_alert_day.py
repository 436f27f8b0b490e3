"""A day of healthy production traffic through every rule, by the real promtool: no alert.

A module of its own (not tests/test_alert_rules.py) because it is the suite's single
longest computation: ``make test`` runs it beside the other alert tests, not after them.
"""

from __future__ import annotations

import importlib.util

import pytest

from alerts.catalogue import all_alerts
from alerts.series import Series
from conftest import ROOT
from rollout.build.render import render
from rollout.load.stack import load_file

pytestmark = pytest.mark.slow


def _detection():
    spec = importlib.util.spec_from_file_location("detection", ROOT / "benchmarks" / "detection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_healthy_noisy_day_fires_no_alert_with_the_short_window_trigger_in(project, tmp_path):
    # 24 h of production's traffic as benchmarks/detection.py makes it (breathing
    # traffic, a rare 5xx, a slow tail, a failed check every few hours), through
    # every rule, evaluated by promtool at the stack's interval and read each minute:
    # nothing but the Watchdog fires.
    detection = _detection()
    config = load_file(project / "stacks" / "Pulumi.production.yaml", project)
    assert "CanaryErrorRateCritical" in {a.name for a in all_alerts(config)}
    render(config, "production", tmp_path / "rendered")
    step = int(config.monitoring.scrape_interval.total_seconds())
    day = detection.healthy_day(Series(config), step)
    firing = detection.firing_over_time(tmp_path / "rendered", day, list(range(0, 24 * 3600 + 1, 60)), step)
    assert sorted({name for names in firing.values() for name in names} - {"Watchdog"}) == []
