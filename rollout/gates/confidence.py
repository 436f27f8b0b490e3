"""Judging the canary with confidence: pass, fail or inconclusive, per measure.

Each measure the gate judges by traffic is a proportion of the stage's requests:

- ``errors``: the share of requests answered with a 5xx;
- ``latencyP95`` / ``latencyP99``: the share slower than ``maxLatencyP95Seconds`` /
  ``maxLatencyP99Seconds``, read from the histogram's bucket at that bound
  (P95 <= 0.5 s  <=>  at most 5 % of requests slower than 0.5 s).

Each track's share gets a two-sided **Clopper–Pearson** ("exact") confidence
interval at the configured confidence (C. J. Clopper, E. S. Pearson, "The use of
confidence or fiducial limits illustrated in the case of the binomial",
Biometrika 26(4), 1934, 404–413): the bounds are quantiles of the beta
distribution, ``B(a/2; x, n-x+1)`` and ``B(1-a/2; x+1, n-x)``, which
:func:`scipy.special.betaincinv` computes (the same function
``scipy.stats.binomtest(...).proportion_ci(method="exact")`` uses). Exact
intervals never cover less than their confidence, also at the edges that matter
here: zero errors, a handful of requests. A Wald (normal) interval would claim
``[0 %, 0 %]`` for 0 errors in 100 requests; Clopper–Pearson says ``[0 %, 3.6 %]``.

With the canary's interval ``[cl, ch]``, the stable track's ``[sl, sh]`` over
the same window, the budget ``B``, the tolerance ``t`` (times stable) and the
negligible share ``f`` (of the budget, under which no share counts as worse than
stable: twice almost nothing is still almost nothing):

- **fail** when ``cl > B`` (surely over the budget), or when
  ``cl > max(t * sh, f * B)`` (surely worse than stable beyond the tolerance);
- **pass** when ``ch <= B`` and ``ch <= max(t * sl, f * B)`` (surely within both);
- **inconclusive** otherwise, and whenever the canary served fewer than
  ``minRequests``: the data cannot tell yet.

A canary truly over its budget, or truly worse than ``t`` times stable, passes
with probability at most ``1 - confidence`` (each bound errs with at most half
of it); a canary truly within both fails with at most the same probability.
Nothing here reads files or the clock: the gate
(:mod:`rollout.gates.judge`), the benchmark and the tests call the same
:func:`judge_measure`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rollout.gates.ratchet import thresholds
from rollout.model.evidence import PROPORTIONS
from rollout.model.transition import Measure, Thresholds, Transition

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)


@dataclass(frozen=True)
class Counts:
    """One track over the stage: its requests and the bad ones among them (5xx, or too slow)."""

    requests: float
    bad: float


@dataclass(frozen=True)
class Interval:
    """A proportion's estimate (``bad / requests``) and its confidence bounds."""

    share: float
    low: float
    high: float


@dataclass(frozen=True)
class Budget:
    """How one measure is judged: its label, the highest share allowed, and the comparison with stable."""

    #: ``errors``, ``latencyP95`` or ``latencyP99``.
    measure: str
    #: For the sentence: ``error ratio``, ``P95 latency``.
    label: str
    #: The highest share of bad requests allowed (0.01; for P95 at its limit, 0.05).
    limit: float
    #: The canary's share may be at most this many times stable's.
    tolerance: float
    #: Shares under ``negligible * limit`` never count as worse than stable.
    negligible: float
    #: What a bad request is, for the sentence (``slower than 0.5 s``); empty for errors.
    what: str = ""


@dataclass(frozen=True)
class Verdict:
    """One measure's verdict with the numbers that decided it and a sentence saying so."""

    measure: str
    verdict: str
    canary: Counts
    stable: Counts | None
    canary_interval: Interval | None
    stable_interval: Interval | None
    confidence: float
    #: "numbers: reason", e.g. "error ratio: canary 0.9 % [0.7 %, 1.2 %] over 14,200 requests vs
    #: stable 0.01 % over 270,000: worse than stable beyond tolerance 2×".
    sentence: str

    def as_json(self) -> dict:
        def interval(value: Interval | None) -> dict | None:
            return None if value is None else {"share": value.share, "low": value.low, "high": value.high}

        def counts(value: Counts | None) -> dict | None:
            return None if value is None else {"requests": value.requests, "bad": value.bad}

        return {
            "measure": self.measure, "verdict": self.verdict, "confidence": self.confidence,
            "canary": counts(self.canary), "canaryInterval": interval(self.canary_interval),
            "stable": counts(self.stable), "stableInterval": interval(self.stable_interval),
            "sentence": self.sentence,
        }


def clopper_pearson(bad: float, requests: float, confidence: float) -> Interval:
    """The two-sided Clopper–Pearson interval of ``bad / requests`` at ``confidence``.

    Counts from Prometheus' ``increase()`` are extrapolated floats: they are
    rounded to whole requests, and the bad ones capped at the requests.
    """
    # Imported here, not at the top: scipy.special costs about half a second to
    # import, paid only when a stage's traffic is judged (never by status, render or plan).
    from scipy.special import betaincinv

    n = max(0, round(requests))
    x = min(max(0, round(bad)), n)
    if n == 0:
        raise ValueError("a proportion of no requests has no interval")
    alpha = 1.0 - confidence
    low = 0.0 if x == 0 else float(betaincinv(x, n - x + 1, alpha / 2))
    high = 1.0 if x == n else float(betaincinv(x + 1, n - x, 1 - alpha / 2))
    return Interval(x / n, low, high)


def percent(share: float, digits: int = 2) -> str:
    """A share as a percentage with two significant digits: 0.009 -> ``0.9 %``, 0.0001 -> ``0.01 %``."""
    return f"{share * 100:.{digits}g} %"


def interval_text(interval: Interval) -> str:
    """``0.9 % [0.75 %, 1.1 %]``: with more digits where two would show a wide stage's bounds as one."""
    digits = 2
    while digits < 4 and percent(interval.low, digits) == percent(interval.high, digits) and interval.low < interval.high:
        digits += 1
    return f"{percent(interval.share, digits)} [{percent(interval.low, digits)}, {percent(interval.high, digits)}]"


def requests_text(value: float) -> str:
    return f"{round(value):,}"


def judge_measure(
    canary: Counts,
    stable: Counts | None,
    budget: Budget,
    confidence: float,
    min_requests: float,
) -> Verdict:
    """The verdict on one measure over a stage (see the module docstring for the rule).

    ``stable`` is the baseline over the same window; None (or no requests) when
    the evidence has none: then only a canary surely under the negligible share
    can pass the comparison.
    """
    name = budget.label + (f" ({budget.what})" if budget.what else "")
    limit = percent(budget.limit)
    if canary.requests < max(1.0, min_requests):
        sentence = (f"{name}: only {requests_text(canary.requests)} canary requests, fewer than the "
                    f"{requests_text(max(1.0, min_requests))} needed to judge it")
        return Verdict(budget.measure, INCONCLUSIVE, canary, stable, None, None, confidence, sentence)
    mine = clopper_pearson(canary.bad, canary.requests, confidence)
    theirs = clopper_pearson(stable.bad, stable.requests, confidence) if stable and round(stable.requests) >= 1 else None
    floor = budget.negligible * budget.limit
    numbers = (f"{name}: canary {interval_text(mine)} over "
               f"{requests_text(canary.requests)} requests vs ")
    numbers += (f"stable {percent(theirs.share)} over {requests_text(stable.requests)}" if theirs
                else "no stable-track data")
    tolerance = f"{budget.tolerance:g}×"
    if mine.low > budget.limit:
        verdict, why = FAIL, f"above the budget of {limit}"
    elif theirs is not None and mine.low > max(budget.tolerance * theirs.high, floor):
        verdict, why = FAIL, f"worse than stable beyond tolerance {tolerance}"
    elif mine.high <= budget.limit and mine.high <= max(budget.tolerance * (theirs.low if theirs else 0.0), floor):
        verdict, why = PASS, f"within the budget of {limit} and tolerance {tolerance} of stable"
    elif mine.high > budget.limit:
        verdict, why = INCONCLUSIVE, (f"cannot yet show it within the budget of {limit} "
                                      f"(its upper bound {percent(mine.high)} is above it)")
    elif theirs is None:
        verdict, why = INCONCLUSIVE, (f"no baseline to compare with, and not surely under {percent(floor)} "
                                      "(the negligible share)")
    else:
        verdict, why = INCONCLUSIVE, (f"cannot yet show it within tolerance {tolerance} of stable, nor under "
                                      f"the negligible {percent(floor)}")
    return Verdict(budget.measure, verdict, canary, stable, mine, theirs, confidence, f"{numbers}: {why}")


#: How the gate words each verdict after its sentence.
VERDICT_WORDS = {
    FAIL: "fail",
    INCONCLUSIVE: "inconclusive: the stage holds and keeps soaking; no rollback",
}


@dataclass(frozen=True)
class Settings:
    """The ratcheted settings a stage is judged by (see :mod:`rollout.model.config.confidence`)."""

    confidence: float
    #: Per measure of :data:`rollout.model.evidence.PROPORTIONS`: times stable.
    tolerance: dict[str, float]
    negligible: float
    min_requests: float


def stage_verdicts(
    values: dict[str, float], seconds: dict[str, float | None], limits: dict[str, float], settings: Settings,
) -> list[Verdict | str]:
    """Each proportion of :data:`~rollout.model.evidence.PROPORTIONS` judged from one stage's evidence.

    ``values`` are the evidence's numbers by measure (the stable track's may be
    missing: no baseline); ``seconds`` the latency bound each slow count was
    counted above; ``limits`` the state's budgets. A measure the evidence cannot
    be judged for (counted above another bound than the limit) is a sentence
    instead of a verdict: it holds the stage like an inconclusive one.
    """
    found: list[Verdict | str] = []
    canary_requests = values["requests"]
    stable_requests = values.get("stableRequests")
    for measure, (label, bad, stable_bad, limit_key, share) in PROPORTIONS.items():
        limit = limits[limit_key]
        what = ""
        if share is not None:
            counted = seconds.get(bad)
            counted = counted if isinstance(counted, (int, float)) and not isinstance(counted, bool) else None
            if counted is None or abs(counted - limit) > 1e-9:
                found.append(f"{label}: the evidence counted the requests slower than "
                             f"{'an unknown bound' if counted is None else f'{counted:g} s'}, but the limit is "
                             f"{limit:g} s: collect the evidence again with this config")
                continue
            what, limit = f"slower than {limit:g} s", share
        stable = (Counts(stable_requests, values[stable_bad])
                  if stable_requests is not None and stable_bad in values else None)
        budget = Budget(measure, label, limit, settings.tolerance[measure], settings.negligible, what)
        found.append(judge_measure(Counts(canary_requests, values[bad]), stable, budget, settings.confidence,
                                   settings.min_requests))
    return found


def _limits(thresholds: Thresholds) -> dict[str, Any]:
    return {"maxErrorRatio": thresholds.max_error_ratio, "maxLatencyP95Seconds": thresholds.max_latency_p95_seconds,
            "maxLatencyP99Seconds": thresholds.max_latency_p99_seconds}


def _settings(thresholds: Thresholds) -> Settings | str:
    """The settings to judge by; a sentence naming what the state lacks instead."""
    tolerance = {"errorRatio": thresholds.tolerance_error_ratio, "latencyP95": thresholds.tolerance_latency_p95,
                 "latencyP99": thresholds.tolerance_latency_p99}
    known = {**_limits(thresholds), "confidence": thresholds.confidence,
             "negligible": thresholds.negligible, **{f"tolerance.{m}": v for m, v in tolerance.items()}}
    missing = [key for key, value in known.items() if value is None]
    if missing:
        return f"the state has no {', '.join(missing)} setting to judge the canary's traffic by"
    return Settings(thresholds.confidence, tolerance, thresholds.negligible, thresholds.min_requests or 1)


def judge_traffic(values: dict[str, float], measures: Mapping[str, Measure], thresholds: Thresholds) -> list[str]:
    """The gate's refusals for the traffic measures of one stage: one sentence per measure not judged pass.

    ``values`` are the evidence's numbers by measure, ``measures`` its records
    (for the bound each slow count was counted above), ``thresholds`` the
    ratcheted ones (:func:`rollout.gates.ratchet.thresholds`).
    """
    settings = _settings(thresholds)
    if isinstance(settings, str):
        return [settings]
    seconds = {m: r.seconds for m, r in measures.items()}
    found = []
    for verdict in stage_verdicts(values, seconds, _limits(thresholds), settings):
        if isinstance(verdict, str):
            found.append(f"{verdict}; {VERDICT_WORDS[INCONCLUSIVE]}")
        elif verdict.verdict != PASS:
            found.append(f"{verdict.sentence} ({VERDICT_WORDS[verdict.verdict]})")
    return found


def evidence_verdicts(t: Transition, service: str) -> list[Verdict | str] | str:
    """Every traffic measure's verdict for one service of ``t``'s evidence, passes included, for display
    (``rollout status --evidence``); a sentence instead when the evidence holds no numbers to judge.

    Judged by the ratcheted settings, as the gate judges; the gate
    (:func:`rollout.gates.budget.canary_within_budget`) also checks the
    evidence's stack, age and stage, which this does not repeat.
    """
    record = t.evidence.services.get(service) if t.evidence is not None else None
    if record is None:
        return "the evidence has no record of this service"
    values = {m: r.value for m, r in record.measures.items() if r.status == "ok" and r.value is not None}
    missing = [m for m in ("requests", *(bad for _, bad, _, _, _ in PROPORTIONS.values())) if m not in values]
    if missing:
        return f"no numbers to judge the traffic by (no {', '.join(missing)})"
    limits = thresholds(t)
    settings = _settings(limits)
    if isinstance(settings, str):
        return settings
    return stage_verdicts(values, {m: r.seconds for m, r in record.measures.items()}, _limits(limits), settings)
