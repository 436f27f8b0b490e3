"""Prometheus' HTTP API as the evidence reads it: one query, its answer checked against
the documented shapes before any number is taken from it.

A garbled or oddly shaped answer (a result that is not a vector, a sample that is
not a number in Prometheus' own notation, an error body) becomes a recorded
fault naming the query, never a number: :func:`result_problem` and
:func:`sample_value` say why. HTTP itself (deadlines, caps, redirects,
credentials) is :mod:`rollout.ops.http`.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rollout.ops.http import Answer, Retry, fetch, json_body, public_url


@dataclass(frozen=True)
class QueryResult:
    """The outcome of one PromQL query, as recorded in evidence."""

    status: str
    #: ``vector``, ``matrix``, ``scalar`` or ``string`` when Prometheus answered.
    result_type: str | None = None
    result: Any = None
    detail: str | None = None
    #: How many HTTP tries the answer took (see rollout.ops.http).
    tries: int = 1


class PrometheusClient:
    """Prometheus' HTTP API (``/api/v1/query``), through :func:`rollout.ops.http.fetch`.

    Connection failures, timeouts and 5xx answers are retried within the
    :class:`~rollout.ops.http.Retry` deadline; what is left after it is
    recorded as it happened (``unreachable``, ``timeout`` or ``error``), which
    refuses the advance. A 4xx (a query Prometheus cannot parse or execute) is
    recorded at once.

    Once a query got no answer at all within its deadline, the queries after it
    get one try each, of at most the per-try timeout: Prometheus is down, and
    waiting out the deadline for each of the five measures would only make the
    refusal slower.
    """

    def __init__(self, url: str, timeout: float = 10.0, retry: Retry | None = None) -> None:
        self.url = url.rstrip("/")
        self.retry = retry or Retry(timeout_s=timeout)
        self._down = False

    def query(self, promql: str, at: datetime) -> QueryResult:
        """An instant query evaluated at ``at``."""
        params = urllib.parse.urlencode({"query": promql, "time": f"{at.timestamp():.3f}"})
        answer = fetch(
            f"{self.url}/api/v1/query",
            data=params.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            # Down: one try each, within one try's time (a Prometheus that trickles
            # would otherwise hold each of the queries for a whole deadline).
            retry=replace(self.retry, max_tries=1, deadline_s=min(self.retry.deadline_s, self.retry.timeout_s))
            if self._down else self.retry,
        )
        tries = answer.tries
        self._down = not answer.answered
        if not answer.answered:
            status = "timeout" if answer.timed_out else "unreachable"
            return QueryResult(status, detail=f"{public_url(self.url)}: {answer.error}; {answer.tries_text()}", tries=tries)
        if not answer.ok:
            # Prometheus answers 400/422/503 with its JSON error envelope.
            why = _api_error(answer.body) or f"HTTP {answer.status}"
            return QueryResult("error", detail=f"{why}; {answer.tries_text()}", tries=tries)
        document, why = json_body(answer)
        if why:
            return QueryResult("error", detail=why, tries=tries)
        if not isinstance(document, dict) or document.get("status") != "success":
            return QueryResult("error", detail=_api_error(answer.body) or "the answer is not a success", tries=tries)
        data = document.get("data")
        if not isinstance(data, dict):
            return QueryResult("error", detail="the answer's data is not an object", tries=tries)
        problem = result_problem(data.get("resultType"), data.get("result"))
        if problem:
            return QueryResult("error", detail=f"the answer is not Prometheus' query result: {problem}", tries=tries)
        return QueryResult("ok", data["resultType"], data["result"], tries=tries)


def _api_error(body: bytes) -> str | None:
    document, _ = json_body_of(body)
    if isinstance(document, dict) and isinstance(document.get("error"), str) and document["error"]:
        kind = document.get("errorType")
        kind = kind if isinstance(kind, str) and kind else "error"
        return f"{kind[:40]}: {document['error'][:300]}"
    return None


def json_body_of(body: bytes) -> tuple[Any, str | None]:
    return json_body(Answer("", 200, body, 1, 0.0))


# --- the shape of an answer -------------------------------------------------------

#: A sample value as Prometheus writes it (Go's strconv.FormatFloat, 'f' or 'e',
#: and its NaN/+Inf/-Inf): a JSON string, never a number, a boolean, or Python's
#: own float syntax ("5_0000", " 1", "infinity").
_SAMPLE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN")
_RESULT_TYPES = ("vector", "matrix", "scalar", "string")


def sample_value(text: Any) -> float:
    """The float of one sample value; ValueError for what Prometheus never writes."""
    if not isinstance(text, str) or not _SAMPLE.fullmatch(text):
        raise ValueError(f"not a sample value: {_shown(text)}")
    return float(text)


def _shown(value: Any) -> str:
    """A value from an answer, short enough for a message (never its whole repr)."""
    if isinstance(value, (dict, list)):
        return f"a {'list' if isinstance(value, list) else 'object'} of {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _sample_problem(pair: Any) -> str | None:
    if not isinstance(pair, list) or len(pair) != 2:
        return f"a sample is not [time, value]: {_shown(pair)}"
    stamp, value = pair
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not math.isfinite(stamp):
        return f"a sample's time is not a number: {_shown(stamp)}"
    try:
        sample_value(value)
    except ValueError as err:
        return str(err)
    return None


def result_problem(result_type: Any, result: Any) -> str | None:
    """What in ``data`` is not the shape Prometheus' API documents; None when it is."""
    if result_type not in _RESULT_TYPES:
        return f"resultType {_shown(result_type)} is not one of {', '.join(_RESULT_TYPES)}"
    if result_type == "scalar":
        return _sample_problem(result)
    if result_type == "string":
        ok = isinstance(result, list) and len(result) == 2 and isinstance(result[1], str)
        return None if ok else f"a string result is not [time, text]: {_shown(result)}"
    if not isinstance(result, list):
        return f"a {result_type} is not a list of series: {_shown(result)}"
    key = "value" if result_type == "vector" else "values"
    for series in result:
        if not isinstance(series, dict):
            return f"a series of the {result_type} is not an object: {_shown(series)}"
        if not isinstance(series.get("metric", {}), dict):
            return f"a series' metric is not an object: {_shown(series.get('metric'))}"
        if key not in series:
            has = "a native histogram" if ("histogram" in series or "histograms" in series) else f"no {key!r}"
            return f"a series of the {result_type} has {has}"
        samples = [series[key]] if result_type == "vector" else series[key]
        if not isinstance(samples, list):
            return f"a series' {key} is not a list of samples: {_shown(samples)}"
        for pair in samples:
            problem = _sample_problem(pair)
            if problem:
                return problem
    return None


# --- the queries ------------------------------------------------------------------
