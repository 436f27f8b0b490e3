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

from rollout.model.evidence import PROPORTIONS

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


def confidence_thresholds(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """The stricter of the new and deployed confidence settings: the higher confidence, the lower
    tolerances and negligible share (each makes a pass harder)."""
    def pick(a: Any, b: Any, stricter) -> Any:
        values = [v for v in (a, b) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return stricter(values) if values else None

    tolerance_new, tolerance_old = new.get("tolerance") or {}, old.get("tolerance") or {}
    return {
        "confidence": pick(new.get("confidence"), old.get("confidence"), max),
        "negligible": pick(new.get("negligible"), old.get("negligible"), min),
        **{f"tolerance.{m}": pick(tolerance_new.get(m), tolerance_old.get(m), min) for m in PROPORTIONS},
    }


def judge_traffic(values: dict[str, float], queries: Mapping[str, Any], limits: dict[str, Any]) -> list[str]:
    """The gate's refusals for the traffic measures of one stage: one sentence per measure not judged pass.

    ``values`` are the evidence's numbers by measure, ``queries`` its records
    (for the bound each slow count was counted above), ``limits`` the ratcheted
    thresholds (:func:`rollout.gates.judge._thresholds` with
    :func:`confidence_thresholds`).
    """
    keys = ["maxErrorRatio", "maxLatencyP95Seconds", "maxLatencyP99Seconds", "confidence", "negligible",
            *(f"tolerance.{m}" for m in PROPORTIONS)]
    missing = [k for k in keys if limits[k] is None]
    if missing:
        return [f"the state has no {', '.join(missing)} setting to judge the canary's traffic by"]
    settings = Settings(limits["confidence"], {m: limits[f"tolerance.{m}"] for m in PROPORTIONS},
                        limits["negligible"], limits["minRequests"] or 1)
    seconds = {m: q.get("seconds") for m, q in queries.items() if isinstance(q, Mapping)}
    found = []
    for verdict in stage_verdicts(values, seconds, limits, settings):
        if isinstance(verdict, str):
            found.append(f"{verdict}; {VERDICT_WORDS[INCONCLUSIVE]}")
        elif verdict.verdict != PASS:
            found.append(f"{verdict.sentence} ({VERDICT_WORDS[verdict.verdict]})")
    return found


def evidence_verdicts(
    new_state: Mapping[str, Any], evidence: Mapping[str, Any], service: str,
) -> list[Verdict | str] | str:
    """Every traffic measure's verdict for one service of the evidence, passes included, for display
    (``rollout status --evidence``); a sentence instead when the evidence holds no numbers to judge.

    The settings are the stricter of ``new_state``'s and the evidence's deployed
    state's, as the gate ratchets them; the gate itself
    (:func:`rollout.gates.judge.judge`) also checks the evidence's stack, age
    and stage, which this does not repeat.
    """
    deployed = evidence.get("deployedState")
    new, old = new_state.get("canary") or {}, (deployed.get("canary") if isinstance(deployed, Mapping) else None) or {}
    def pick(key: str, stricter) -> Any:
        values = [v for v in (new.get(key), old.get(key)) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return stricter(values) if values else None

    limits = {k: pick(k, min) for k in ("maxErrorRatio", "maxLatencyP95Seconds", "maxLatencyP99Seconds")}
    limits.update(minRequests=pick("minRequests", max), **confidence_thresholds(new, old))
    services = evidence.get("services")
    record = services.get(service) if isinstance(services, Mapping) else None
    queries = record.get("queries") if isinstance(record, Mapping) else None
    if not isinstance(queries, Mapping):
        return "the evidence has no record of this service"
    values = {m: q["value"] for m, q in queries.items()
              if isinstance(q, Mapping) and q.get("status") == "ok" and isinstance(q.get("value"), (int, float))
              and not isinstance(q.get("value"), bool)}
    needed = ["requests", *(bad for _, bad, _, _, _ in PROPORTIONS.values())]
    missing = [m for m in needed if m not in values]
    keys = ["maxErrorRatio", "maxLatencyP95Seconds", "maxLatencyP99Seconds", "confidence", "negligible",
            *(f"tolerance.{m}" for m in PROPORTIONS)]
    if missing or any(limits.get(k) is None for k in keys):
        return f"no numbers to judge the traffic by ({', '.join(missing) or 'the state has no settings'})"
    settings = Settings(limits["confidence"], {m: limits[f"tolerance.{m}"] for m in PROPORTIONS},
                        limits["negligible"], limits.get("minRequests") or 1)
    seconds = {m: q.get("seconds") for m, q in queries.items() if isinstance(q, Mapping)}
    return stage_verdicts(values, seconds, limits, settings)
