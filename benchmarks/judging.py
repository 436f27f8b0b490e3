"""Section 9 of the benchmarks: the old judge and the new one on the same simulated stages.

The old judge (before the confidence judgement) passed a stage whose point
estimates were within the fixed limits on at least ``minRequests`` requests:
error ratio <= 1 %, P95 <= 0.5 s (at most 5 % of requests slower than 0.5 s),
P99 <= 1 s (at most 1 % slower than 1 s). It knew two verdicts: pass, or refuse
(counted here as "fail"). The new one (rollout.gates.confidence, the shipped
defaults: 95 %, tolerance 2x, negligible 0.1 of each budget) judges each share
with Clopper–Pearson bounds against the budget and the stable track over the
same window, and may hold.

Each scenario is a stage with true shares per track; each seed draws the
stage's counts (binomial) and both judges judge the same counts. "Requests to
decide" walks a stage as it soaks (the canary's requests doubling from 100, the
stable track's in proportion, counts drawn incrementally) and records, per
seed, the first count at which the new judge passes or fails; the figure is the
median over the seeds that decided (and how many did not within 10^7).

Run on its own with ``python benchmarks/judging.py [--tiny]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rollout.gates.confidence import FAIL, INCONCLUSIVE, PASS, Budget, Counts, judge_measure  # noqa: E402

CONFIDENCE, TOLERANCE, NEGLIGIBLE, MIN_REQUESTS = 0.95, 2.0, 0.1, 100
#: (measure, budget share): errors <= 1 %, slower than 0.5 s <= 5 %, slower than 1 s <= 1 %.
BUDGETS = (
    Budget("errorRatio", "error ratio", 0.01, TOLERANCE, NEGLIGIBLE),
    Budget("latencyP95", "P95 latency", 0.05, TOLERANCE, NEGLIGIBLE, "slower than 0.5 s"),
    Budget("latencyP99", "P99 latency", 0.01, TOLERANCE, NEGLIGIBLE, "slower than 1 s"),
)


@dataclass(frozen=True)
class Track:
    """True shares of one track: errors, slower than 0.5 s, slower than 1 s."""

    errors: float
    slow_p95: float
    slow_p99: float

    def shares(self) -> tuple[float, float, float]:
        return self.errors, self.slow_p95, self.slow_p99


@dataclass(frozen=True)
class Scenario:
    name: str
    canary_requests: int
    stable_requests: int
    canary: Track
    stable: Track
    #: What a judge should do: "pass" for a healthy canary, "fail" for a regression.
    truth: str


HEALTHY = Track(0.001, 0.01, 0.001)
SCENARIOS = (
    Scenario("quiet service (120 canary requests a stage)", 120, 2_280, HEALTHY, HEALTHY, PASS),
    Scenario("busy healthy service", 50_000, 950_000, HEALTHY, HEALTHY, PASS),
    Scenario("canary 3x worse than stable, under budget", 50_000, 950_000,
             Track(0.006, 0.01, 0.001), Track(0.002, 0.01, 0.001), FAIL),
    Scenario("canary 90x worse than stable, under budget", 14_200, 270_000,
             Track(0.009, 0.01, 0.001), Track(0.0001, 0.01, 0.001), FAIL),
    Scenario("canary at 2 % errors", 20_000, 380_000, Track(0.02, 0.01, 0.001), HEALTHY, FAIL),
    # Stable's P99 120 ms, the canary's 900 ms: under the 1 s limit, but 0.6 % of its requests
    # are slower than 1 s against stable's 0.01 %.
    Scenario("slow canary under the P99 limit", 20_000, 380_000,
             Track(0.001, 0.04, 0.006), Track(0.001, 0.002, 0.0001), FAIL),
    Scenario("both tracks equally bad (1.5 % errors)", 20_000, 380_000,
             Track(0.015, 0.01, 0.001), Track(0.015, 0.01, 0.001), FAIL),
    Scenario("empty stage (no requests)", 0, 0, HEALTHY, HEALTHY, INCONCLUSIVE),
)


def old_judge(canary_requests: int, canary_bad: tuple[int, ...]) -> str:
    if canary_requests < MIN_REQUESTS:
        return FAIL  # no data, or too few requests: refused
    within = all(bad / canary_requests <= budget.limit for bad, budget in zip(canary_bad, BUDGETS))
    return PASS if within else FAIL


def new_judge(canary_requests: int, canary_bad, stable_requests: int, stable_bad) -> str:
    verdicts = [
        judge_measure(Counts(canary_requests, c), Counts(stable_requests, s) if stable_requests else None,
                      budget, CONFIDENCE, MIN_REQUESTS).verdict
        for c, s, budget in zip(canary_bad, stable_bad, BUDGETS)
    ]
    if FAIL in verdicts:
        return FAIL
    return PASS if all(v == PASS for v in verdicts) else INCONCLUSIVE


def _draw(rng, n: int, track: Track) -> tuple[int, ...]:
    return tuple(int(rng.binomial(n, share)) if n else 0 for share in track.shares())


def rates(scenario: Scenario, seeds: int) -> dict:
    rng = np.random.default_rng(28)
    old = {PASS: 0, FAIL: 0}
    new = {PASS: 0, FAIL: 0, INCONCLUSIVE: 0}
    for _ in range(seeds):
        canary = _draw(rng, scenario.canary_requests, scenario.canary)
        stable = _draw(rng, scenario.stable_requests, scenario.stable)
        old[old_judge(scenario.canary_requests, canary)] += 1
        new[new_judge(scenario.canary_requests, canary, scenario.stable_requests, stable)] += 1
    return {"old": {k: v / seeds for k, v in old.items()}, "new": {k: v / seeds for k, v in new.items()}}


def requests_to_decide(scenario: Scenario, seeds: int, ceiling: int = 10_000_000) -> tuple[float | None, int]:
    """Median canary requests at which the new judge first decides, and how many seeds never did."""
    if not scenario.canary_requests:
        return None, seeds
    rng = np.random.default_rng(2028)
    ratio = scenario.stable_requests / scenario.canary_requests
    decided, undecided = [], 0
    for _ in range(seeds):
        n, canary, stable_n, stable = 0, (0, 0, 0), 0, (0, 0, 0)
        target = MIN_REQUESTS
        while target <= ceiling:
            more, more_stable = target - n, round(target * ratio) - stable_n
            canary = tuple(a + b for a, b in zip(canary, _draw(rng, more, scenario.canary)))
            stable = tuple(a + b for a, b in zip(stable, _draw(rng, more_stable, scenario.stable)))
            n, stable_n = target, stable_n + more_stable
            if new_judge(n, canary, stable_n, stable) != INCONCLUSIVE:
                decided.append(n)
                break
            target *= 2
        else:
            undecided += 1
    return (statistics.median(decided) if decided else None), undecided


def run(tiny: bool = False) -> dict:
    seeds = 20 if tiny else 400
    walk_seeds = 10 if tiny else 100
    print(f"9. Judging the canary: the old judge (fixed limits on point estimates) and the new one "
          f"(Clopper–Pearson at {CONFIDENCE:.0%}, tolerance {TOLERANCE:g}x vs stable), {seeds} seeds per scenario")
    print(f"   {'scenario':48} {'should':>12} | old pass  fail | new pass  fail  hold | requests to decide")
    figures = {}
    for scenario in SCENARIOS:
        found = rates(scenario, seeds)
        median, undecided = requests_to_decide(scenario, walk_seeds)
        old, new = found["old"], found["new"]
        decide = "never (no requests)" if median is None and not scenario.canary_requests else (
            f"{median:,.0f}" + (f" ({undecided} of {walk_seeds} undecided at 10^7)" if undecided else ""))
        print(f"   {scenario.name:48} {scenario.truth:>12} | {old[PASS]:8.0%} {old[FAIL]:5.0%} |"
              f" {new[PASS]:8.0%} {new[FAIL]:5.0%} {new[INCONCLUSIVE]:5.0%} | {decide}")
        figures[scenario.name] = {**found, "requests_to_decide": median, "undecided": undecided}
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    run(tiny=parser.parse_args().tiny)
