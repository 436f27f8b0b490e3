"""The confidence judgement (rollout.gates.confidence): Clopper–Pearson bounds, three verdicts, and
the properties that make them trustworthy, on fixed seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from rollout.gates.confidence import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Budget,
    Counts,
    clopper_pearson,
    judge_measure,
    stage_verdicts,
    Settings,
)
from rollout.model.config import CanaryThresholds, ConfidenceSettings

ERRORS = Budget("errorRatio", "error ratio", 0.01, 2.0, 0.1)
P99 = Budget("latencyP99", "P99 latency", 0.01, 2.0, 0.1, "slower than 1 s")


@pytest.mark.parametrize("bad, requests, confidence", [
    (0, 100, 0.95), (1, 100, 0.95), (3, 100, 0.9), (126, 14_200, 0.95), (27, 270_000, 0.99), (100, 100, 0.95),
    (0, 1, 0.95), (5, 7, 0.98),
])
def test_the_bounds_are_scipys_exact_clopper_pearson_interval(bad, requests, confidence):
    ours = clopper_pearson(bad, requests, confidence)
    theirs = binomtest(bad, requests).proportion_ci(confidence_level=confidence, method="exact")
    assert ours.low == pytest.approx(theirs.low, abs=1e-12) and ours.high == pytest.approx(theirs.high, abs=1e-12)
    assert ours.share == bad / requests


def test_counts_from_increase_are_rounded_and_errors_capped_at_the_requests():
    assert clopper_pearson(3.4, 99.6, 0.95) == clopper_pearson(3, 100, 0.95)
    assert clopper_pearson(101.2, 100.2, 0.95).share == 1.0


def test_no_errors_in_100_requests_cannot_show_a_1_percent_budget():
    verdict = judge_measure(Counts(100, 0), Counts(100_000, 10), ERRORS, 0.95, 100)
    assert verdict.verdict == INCONCLUSIVE
    assert verdict.sentence == ("error ratio: canary 0 % [0 %, 3.6 %] over 100 requests vs stable 0.01 % over 100,000: "
                                "cannot yet show it within the budget of 1 % (its upper bound 3.6 % is above it)")


def test_a_canary_90_times_worse_than_stable_under_the_budget_fails_naming_the_comparison():
    verdict = judge_measure(Counts(14_200, 128), Counts(270_000, 27), ERRORS, 0.95, 100)
    assert verdict.verdict == FAIL
    assert verdict.sentence == ("error ratio: canary 0.9 % [0.75 %, 1.1 %] over 14,200 requests vs stable 0.01 % over "
                                "270,000: worse than stable beyond tolerance 2×")


def test_a_busy_healthy_canary_passes_and_one_over_budget_fails():
    assert judge_measure(Counts(12_000, 24), Counts(228_000, 456), ERRORS, 0.95, 100).verdict == PASS
    over = judge_measure(Counts(12_000, 240), Counts(228_000, 456), ERRORS, 0.95, 100)
    assert over.verdict == FAIL and over.sentence.endswith("above the budget of 1 %")


def test_too_few_requests_hold_whatever_they_show():
    for bad in (0, 50):
        verdict = judge_measure(Counts(99, bad), Counts(100_000, 10), ERRORS, 0.95, 100)
        assert verdict.verdict == INCONCLUSIVE and "fewer than the 100 needed" in verdict.sentence
    assert judge_measure(Counts(0, 0), None, ERRORS, 0.95, 0).verdict == INCONCLUSIVE


def test_against_a_perfect_stable_track_only_a_surely_negligible_share_passes():
    # Stable failed nothing: "twice stable" is 0, so the negligible share (0.1 % of 1 %) decides.
    assert judge_measure(Counts(10_000, 0), Counts(200_000, 0), ERRORS, 0.95, 100).verdict == PASS
    held = judge_measure(Counts(1_000, 0), Counts(200_000, 0), ERRORS, 0.95, 100)
    assert held.verdict == INCONCLUSIVE and "nor under the negligible 0.1 %" in held.sentence


def test_without_a_baseline_only_the_negligible_share_passes_the_comparison():
    assert judge_measure(Counts(10_000, 0), None, ERRORS, 0.95, 100).verdict == PASS
    held = judge_measure(Counts(10_000, 20), None, ERRORS, 0.95, 100)
    assert held.verdict == INCONCLUSIVE and "no stable-track data" in held.sentence


def test_a_latency_measure_says_what_a_slow_request_is():
    verdict = judge_measure(Counts(50_000, 250), Counts(900_000, 90), P99, 0.95, 100)
    assert verdict.verdict == FAIL
    assert verdict.sentence.startswith("P99 latency (slower than 1 s): canary 0.5 % [")


def test_slow_counts_of_another_bound_than_the_limit_are_not_judged():
    values = {"requests": 10_000, "errors": 0, "latencyP95SlowRequests": 0, "latencyP99SlowRequests": 0}
    limits = {"maxErrorRatio": 0.01, "maxLatencyP95Seconds": 0.5, "maxLatencyP99Seconds": 1.0}
    settings = Settings(0.95, {"errorRatio": 2, "latencyP95": 2, "latencyP99": 2}, 0.1, 100)
    found = stage_verdicts(values, {"latencyP95SlowRequests": 0.25, "latencyP99SlowRequests": "1"}, limits, settings)
    assert found[0].verdict == PASS
    assert found[1] == ("P95 latency: the evidence counted the requests slower than 0.25 s, but the limit is 0.5 s: "
                        "collect the evidence again with this config")
    assert "an unknown bound" in found[2]


SEEDS = range(400)


def _rates(canary_share: float, stable_share: float, canary_n: int, stable_n: int, budget: Budget, confidence=0.95):
    """How often each verdict comes out over SEEDS simulated stages with these true shares."""
    rng = np.random.default_rng(20261120)
    found = {PASS: 0, FAIL: 0, INCONCLUSIVE: 0}
    for _ in SEEDS:
        canary = Counts(canary_n, int(rng.binomial(canary_n, canary_share)))
        stable = Counts(stable_n, int(rng.binomial(stable_n, stable_share)))
        found[judge_measure(canary, stable, budget, confidence, 100).verdict] += 1
    return {verdict: n / len(SEEDS) for verdict, n in found.items()}


@pytest.mark.parametrize("canary_share, stable_share, canary_n", [
    pytest.param(0.009, 0.0001, 14_200, id="90 times stable, under the budget"),
    pytest.param(0.0031, 0.001, 20_000, id="3 times stable, at the edge of what the data shows"),
    pytest.param(0.0101, 0.0101, 200_000, id="both tracks just over the budget"),
    pytest.param(0.0021, 0.001, 2_000, id="just over twice stable, thin data"),
])
def test_no_regression_passes_more_often_than_the_confidence_allows(canary_share, stable_share, canary_n):
    assert _rates(canary_share, stable_share, canary_n, canary_n * 19, ERRORS)[PASS] <= 0.05


@pytest.mark.parametrize("requests", [5, 60, 150])
def test_thin_data_holds_rather_than_passes(requests):
    rates = _rates(0.001, 0.001, requests, requests * 19, ERRORS)
    assert rates[PASS] == 0 and rates[INCONCLUSIVE] >= 0.95


def test_a_busy_healthy_canary_mostly_passes_and_never_fails_here():
    rates = _rates(0.002, 0.002, 50_000, 950_000, ERRORS)
    assert rates[PASS] >= 0.95 and rates[FAIL] == 0


def test_the_confidence_settings_default_to_the_documented_values_and_refuse_what_is_not_allowed():
    assert CanaryThresholds().confidence == ConfidenceSettings()
    assert (ConfidenceSettings().level, ConfidenceSettings().tolerance.error_ratio, ConfidenceSettings().negligible) == (
        0.95, 2.0, 0.1)
    with pytest.raises(ValueError, match="not between 0.5 and 0.9999"):
        ConfidenceSettings.model_validate({"level": 1.0})
    with pytest.raises(ValueError, match="Extra inputs"):
        ConfidenceSettings.model_validate({"levle": 0.9})
