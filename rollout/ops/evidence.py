"""Gate evidence: the canary's SLIs over the deployed stage, read from Prometheus.

``rollout evidence`` runs :func:`gather` (:func:`collect`, with the live routes) and writes its JSON; ``rollout check
--evidence``, ``rollout advance --evidence`` and the policy pack hand that JSON to
:func:`rollout.gates.judge.judge`.

For each service the window is the deployed stage: from its ``stageStartedAt`` to
the time of collection. Instant queries at the collection time cover it:

- ``requests``: canary requests over the stage (``increase`` of the request counter);
- ``errorRatio``: 5xx requests / all requests over the stage;
- ``latencyP95Seconds`` / ``latencyP99Seconds``: ``histogram_quantile`` over the
  stage's summed bucket increases;
- ``consecutiveFailedHealthChecks``: the longest run of failed probes
  (``probe_success == 0``) in the raw samples of the stage, per probe series;
- the counts the gate judges with confidence (:func:`proportion_queries`), of the
  canary and of the stable track over the same window, the baseline: requests,
  5xx requests, requests slower than each latency limit (each with the bound
  it counted above, ``seconds``), and stable's error ratio and quantiles for display.

The soak counts from when the stage took traffic, not from when the stack file
was edited (review, merge and deploy time are no soak). Prometheus sees the
canary's share of the service's requests through a 5-minute rate, evaluated once
a minute: the share reaches 90 % of the stage's weight about 4.5 minutes after
the traffic moved, and is first seen up to a minute later. ``trafficSeenAt`` is
that first sight; ``trafficSince`` is when the canary began taking its share as
far as those samples can tell: the first sight less the rate window and the step
(:data:`SHARE_LAG_SECONDS`, 6 minutes at the usual step), never before the
stage's recorded start. So a stage deployed as soon as it was recorded soaks
from its record, and the earliest advance ``rollout status`` and ``rollout plan``
show (the record plus the soak) is the one the gate allows; a stage deployed an
hour after its record soaks from its deploy. At 0 %, which takes no requests by
design, ``trafficSince`` is the first probe sample of the canary's pods. The
gates count the soak from it to ``collectedAt``, so evidence from a Prometheus
that holds five minutes of a one-day stage covers five minutes and refuses.

They read the metric contract's raw series (names from ``rollout:metrics``)
rather than the 5-minute SLI recording rules (``rollout.model.conventions``): a ratio or
a quantile over the whole stage is exact from counters and histogram buckets,
whereas averaging 5-minute ratios weighs a quiet night like a busy day, and a
recording rule has no samples from before it was loaded, so a stage that began
before a rule change would be judged on part of its traffic.

Every query's outcome is recorded as it is: ``ok`` with a finite number, or one
of ``empty`` (no series), ``nan``, ``infinite``, ``error`` (Prometheus answered
with an error, or with something that is not its API's JSON), ``timeout`` (no
answer in time) and ``unreachable`` (no connection). Nothing is ever recorded as
a zero that Prometheus did not return. Each query also records how many HTTP
tries it took: transient failures are retried (:mod:`rollout.ops.http`).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any, Mapping

from alerts.model import le_matcher
from rollout.model import conventions, scope
from rollout.model.config import StackConfig
from rollout.model.durations import format_duration
from rollout.model.evidence import MEASURES
from rollout.ops.http import Retry, public_url
from rollout.ops.prometheus_api import PrometheusClient, QueryResult, sample_value  # noqa: F401 - sample_value: verify and the tests read it here
from rollout.model.time import format_time, parse_time

#: Identifies an evidence document and its format version.
EVIDENCE_KIND = "rollout-gate-evidence"
EVIDENCE_VERSION = 1
#: HTTP status codes that count as errors in the error ratio.
SERVER_ERROR_CODES = "5.."
SERVER_ERROR_CODES_MATCHER = f'{conventions.CODE_LABEL}=~"{SERVER_ERROR_CODES}"'


def _selector(config: StackConfig, service: str, extra: str = "", track: str | None = conventions.CANARY) -> str:
    """The matchers of one service's series in the stack's scope (rollout.model.scope): a
    Prometheus other stacks share holds their series of the same service name too."""
    labels = [*scope.matchers(config), f'{conventions.SERVICE_LABEL}="{service}"']
    if track:
        labels.append(f'{conventions.TRACK_LABEL}="{track}"')
    return "{" + ",".join(labels + ([extra] if extra else [])) + "}"


def queries(config: StackConfig, service: str, window_seconds: int) -> dict[str, str]:
    """The PromQL of each measure for one service's canary over a window ending at query time."""
    metrics = config.metrics
    window = f"[{window_seconds}s]"
    requests = f"{metrics.requests_total}{_selector(config, service)}{window}"
    server_errors = f'{conventions.CODE_LABEL}=~"{SERVER_ERROR_CODES}"'
    errors = f"{metrics.requests_total}{_selector(config, service, server_errors)}{window}"
    buckets = f"sum by (le) (increase({metrics.request_duration_bucket}{_selector(config, service)}{window}))"
    return {
        "requests": f"sum(increase({requests}))",
        # A service exports no 5xx series until its first error: no error series
        # while requests exist means no errors. With no requests at all the
        # denominator is empty and so is the result: "no data", never 0.
        "errorRatio": f"(sum(increase({errors})) or vector(0)) / sum(increase({requests}))",
        "latencyP95Seconds": f"histogram_quantile(0.95, {buckets})",
        "latencyP99Seconds": f"histogram_quantile(0.99, {buckets})",
        "consecutiveFailedHealthChecks": f"{metrics.probe_success}{_selector(config, service)}{window}",
        **proportion_queries(config, service, window_seconds),
    }


def proportion_queries(config: StackConfig, service: str, window_seconds: int) -> dict[str, str]:
    """The counts the gate judges with confidence, of both tracks over the same window.

    Per track: requests, 5xx requests, and requests slower than each latency
    limit (the histogram's ``+Inf`` bucket less its bucket at the limit, which
    docs/metrics.md requires); for the stable track also the error ratio and
    quantiles, shown beside the canary's.
    """
    metrics, window = config.metrics, f"[{window_seconds}s]"
    found = {}
    for track, prefix in ((conventions.CANARY, ""), (conventions.STABLE, "stable")):
        def key(name: str) -> str:
            return prefix + name[0].upper() + name[1:] if prefix else name

        requests = f"sum(increase({metrics.requests_total}{_selector(config, service, track=track)}{window}))"
        errors = f'{metrics.requests_total}{_selector(config, service, SERVER_ERROR_CODES_MATCHER, track)}{window}'
        # No 5xx series until a first error: 0 while the track has requests, no data without.
        found[key("errors")] = f"sum(increase({errors})) or {requests} * 0"
        if prefix:
            found[key("requests")] = requests
        for measure, seconds in (("latencyP95", config.canary.max_latency_p95_seconds),
                                 ("latencyP99", config.canary.max_latency_p99_seconds)):
            def bucket(le: str) -> str:
                return f"sum(increase({metrics.request_duration_bucket}{_selector(config, service, le, track)}{window}))"

            found[key(f"{measure}SlowRequests")] = f'{bucket(_INF)} - {bucket(f"le=~{chr(34)}{le_matcher(seconds)}{chr(34)}")}'
        if prefix:
            buckets = f"sum by (le) (increase({metrics.request_duration_bucket}{_selector(config, service, track=track)}{window}))"
            found["stableErrorRatio"] = f"({found['stableErrors']}) / {requests}"
            found["stableLatencyP95Seconds"] = f"histogram_quantile(0.95, {buckets})"
            found["stableLatencyP99Seconds"] = f"histogram_quantile(0.99, {buckets})"
    return found


_INF = 'le="+Inf"'


#: The canary has taken a stage's traffic once its observed share reaches this
#: fraction of the stage's weight (request shares wobble around the weight).
TRAFFIC_SHARE_TOLERANCE = 0.9
#: The rate window of the traffic-share series, and the most points it may have.
SHARE_RATE_WINDOW = "5m"
SHARE_RATE_WINDOW_SECONDS = 300
SHARE_MAX_POINTS = 10_000
#: The least step of the traffic-share series.
SHARE_STEP_SECONDS = 60
#: How long after the traffic moved Prometheus first sees the share, at most: the rate window
#: (the share reaches 90 % of the weight after 90 % of it) and one step.
SHARE_LAG_SECONDS = SHARE_RATE_WINDOW_SECONDS + SHARE_STEP_SECONDS


def share_step(window_seconds: int) -> int:
    """The step of the traffic-share series over a window (at most :data:`SHARE_MAX_POINTS` points)."""
    return max(SHARE_STEP_SECONDS, math.ceil(window_seconds / SHARE_MAX_POINTS))


def share_query(config: StackConfig, service: str, window_seconds: int) -> str:
    """The canary's share of the service's requests over the window, as a range (a subquery)."""
    metrics = config.metrics
    canary = f"{metrics.requests_total}{_selector(config, service)}[{SHARE_RATE_WINDOW}]"
    every = f"{metrics.requests_total}{_selector(config, service, track=None)}[{SHARE_RATE_WINDOW}]"
    return f"(sum(rate({canary})) / sum(rate({every})))[{window_seconds}s:{share_step(window_seconds)}s]"


def traffic_since(
    client: "PrometheusClient", config: StackConfig, service: str, weight: int, started: datetime,
    seconds: int, now: datetime, probes: QueryResult | None,
) -> tuple[str | None, str | None]:
    """When the stage took its traffic, as far as Prometheus can tell: (time, detail).

    Above 0 %: the first point of the canary's request share at or above
    :data:`TRAFFIC_SHARE_TOLERANCE` of the weight (:func:`traffic_seen`) less the
    share's lag (the rate window and the step), never before the stage's start.
    At 0 % the canary takes no requests by design: the first probe sample of its
    pods. None when the data shows neither (a Prometheus that holds nothing of the stage).
    """
    seen, detail = traffic_seen(client, config, service, weight, started, seconds, now, probes)
    return onset(seen, weight, started, seconds), detail


def onset(seen: str | None, weight: int, started: datetime, seconds: int) -> str | None:
    """``trafficSince`` from ``trafficSeenAt``: the share's lag taken off, never before the stage began."""
    if seen is None or weight == 0:
        return seen
    lag = SHARE_RATE_WINDOW_SECONDS + share_step(seconds)
    return format_time(max(started, parse_time(seen) - timedelta(seconds=lag)))


def traffic_seen(
    client: "PrometheusClient", config: StackConfig, service: str, weight: int, started: datetime,
    seconds: int, now: datetime, probes: QueryResult | None,
) -> tuple[str | None, str | None]:
    """When Prometheus first saw the stage take its traffic, within the stage: (time, detail)."""
    if weight == 0:
        result, threshold = probes, None
    else:
        result, threshold = client.query(share_query(config, service, seconds), now), TRAFFIC_SHARE_TOLERANCE * weight / 100
    if result is None or result.status != "ok" or result.result_type != "matrix" or not isinstance(result.result, list):
        return None, f"no traffic-share data ({result.status if result else 'not queried'})"
    first = None
    for item in result.result:
        for stamp, value in item.get("values") or ():
            stamp, value = float(stamp), sample_value(value)  # shapes checked in query()
            # Only samples of the stage's window count (a stamp past it is no data of it).
            if not started.timestamp() <= stamp <= now.timestamp() or (threshold is not None and not value >= threshold):
                continue
            first = stamp if first is None else min(first, stamp)
    if first is None:
        return None, "the canary never took the stage's share in the data Prometheus holds"
    return format_time(datetime.fromtimestamp(math.floor(first), started.tzinfo)), None


def _scalar(result: QueryResult) -> tuple[str, float | None, str | None]:
    """One number from a vector answer: (status, value, detail)."""
    if result.status != "ok":
        return result.status, None, result.detail
    if result.result_type != "vector" or not isinstance(result.result, list):
        return "error", None, f"expected a vector, got {result.result_type}"
    if not result.result:
        return "empty", None, "no series matched"
    if len(result.result) > 1:
        return "error", None, f"expected one series, got {len(result.result)}"
    return _number(result.result[0]["value"][1])  # shapes checked in query()


def _number(text: Any) -> tuple[str, float | None, str | None]:
    try:
        value = sample_value(text)
    except ValueError as err:
        return "error", None, str(err)
    if math.isnan(value):
        return "nan", None, "NaN: no samples to compute it from"
    if math.isinf(value):
        return "infinite", None, f"{text}"
    return "ok", value, None


def _slow_bound(config: StackConfig, measure: str) -> float:
    """The latency limit a slow-request count counted above."""
    canary = config.canary
    return canary.max_latency_p95_seconds if "P95" in measure else canary.max_latency_p99_seconds


def longest_failure_run(series: list[Mapping[str, Any]]) -> int:
    """The longest run of consecutive failed probes (value 0) in any one series' samples."""
    longest = 0
    for item in series:
        run = 0
        for _, value in item.get("values") or ():
            run = run + 1 if sample_value(value) == 0 else 0
            longest = max(longest, run)
    return longest


def _health(result: QueryResult) -> tuple[str, float | None, str | None]:
    if result.status != "ok":
        return result.status, None, result.detail
    if result.result_type != "matrix" or not isinstance(result.result, list):
        return "error", None, f"expected a matrix, got {result.result_type}"
    samples = sum(len(item.get("values") or ()) for item in result.result)
    if not samples:
        return "empty", None, "no probe samples in the stage"
    try:
        return "ok", float(longest_failure_run(result.result)), None
    except (TypeError, ValueError) as err:
        return "error", None, f"unreadable probe sample: {err}"


def collect_service(
    client: PrometheusClient, config: StackConfig, service: str, deployed: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The evidence of one service over its deployed stage, ending at ``now``."""
    started = parse_time(deployed["stageStartedAt"])
    record: dict[str, Any] = {
        "stageWeight": deployed["weight"],
        "stageStartedAt": deployed["stageStartedAt"],
        "release": deployed.get("release"),
        "trafficSince": None,
        "windowSeconds": None,
        "queries": {},
    }
    seconds = math.ceil((now - started).total_seconds())
    if seconds <= 0:
        record["queries"] = {
            measure: {"status": "error", "value": None, "query": None, "detail": "the stage has not begun"}
            for measure in MEASURES
        }
        return record
    record["windowSeconds"] = seconds
    probes = None
    for measure, promql in queries(config, service, seconds).items():
        result = client.query(promql, now)
        if measure == "consecutiveFailedHealthChecks":
            probes = result
        status, value, detail = _health(result) if measure == "consecutiveFailedHealthChecks" else _scalar(result)
        record["queries"][measure] = {
            "status": status, "value": value, "query": promql, "detail": detail, "tries": result.tries,
        }
        if measure.endswith("SlowRequests"):
            bound = _slow_bound(config, measure)
            record["queries"][measure]["seconds"] = bound
            if status == "empty":
                record["queries"][measure]["detail"] = (
                    f'no requests, or no histogram bucket le="{bound:g}" (docs/metrics.md: the gate reads '
                    "the bucket at each latency limit)")
    seen, detail = traffic_seen(client, config, service, deployed["weight"], started, seconds, now, probes)
    record["trafficSeenAt"] = seen
    record["trafficSince"] = onset(seen, deployed["weight"], started, seconds)
    if detail:
        record["trafficDetail"] = detail
    return record


def collect(
    config: StackConfig,
    stack: str,
    client: PrometheusClient,
    deployed_state: Mapping[str, Any] | None,
    now: datetime,
    deployed_source: str,
    upstream_state: Mapping[str, Any] | None = None,
    upstream_source: str | None = None,
) -> dict[str, Any]:
    """The evidence document for ``stack``: JSON-able, keys sorted when written.

    Services of the config that the deployed state does not know get a record
    without queries (there is no deployed stage to measure); the gates refuse
    their advance for that reason.
    """
    services: dict[str, Any] = {}
    deployed_services = (deployed_state or {}).get("services") or {}
    for service in config.services:
        deployed = deployed_services.get(service.name)
        if deployed is None:
            services[service.name] = {
                "stageWeight": None,
                "stageStartedAt": None,
                "release": None,
                "trafficSince": None,
                "windowSeconds": None,
                "queries": {},
                "detail": "not in the deployed state: no deployed stage to measure",
            }
            continue
        services[service.name] = collect_service(client, config, service.name, deployed, now)
    return {
        "kind": EVIDENCE_KIND,
        "version": EVIDENCE_VERSION,
        "stack": stack,
        "collectedAt": format_time(now),
        "prometheus": public_url(client.url),
        "deployedState": deployed_state,
        "deployedStateSource": deployed_source,
        "upstreamState": upstream_state,
        "upstreamStateSource": upstream_source,
        "services": services,
    }


def gather(
    config: StackConfig,
    stack: str,
    prometheus: str,
    retry: Retry,
    now: datetime,
    deployed_state: Mapping[str, Any] | None,
    deployed_source: str,
    upstream_state: Mapping[str, Any] | None = None,
    upstream_source: str | None = None,
    live_routes: str | None = None,
) -> dict[str, Any]:
    """``rollout evidence``: :func:`collect` from the Prometheus at ``prometheus``, with each
    service's live route (``kubectl get httproutes -o json`` in the file ``live_routes``) when given."""
    live = None
    if live_routes:
        # Only with --live-routes: the fast path's module loads httpx.
        from rollout.ops.fastpath import read_live_routes

        live = read_live_routes(live_routes, [s.name for s in config.services])
    client = PrometheusClient(prometheus, retry=retry)
    evidence = collect(config, stack, client, deployed_state, now, deployed_source, upstream_state, upstream_source)
    if live is not None:
        for name, record in evidence["services"].items():
            record["liveRoute"] = live.get(name)
    return evidence


def dumps(evidence: Mapping[str, Any]) -> str:
    """The evidence as written to disk: sorted keys, two-space indent, final newline."""
    return json.dumps(evidence, indent=2, sort_keys=True, allow_nan=False) + "\n"


def summary(evidence: Mapping[str, Any]) -> list[str]:
    """One line per service and measure, for the terminal."""
    lines = []
    for name, record in sorted((evidence.get("services") or {}).items()):
        window = record.get("windowSeconds")
        span = f"over {format_duration(timedelta(seconds=window))}" if window else "(no window)"
        lines.append(f"{name}: canary at {record.get('stageWeight')}% since {record.get('stageStartedAt')} {span}")
        if record.get("release"):
            lines.append(f"  release: {record['release']}")
        if record.get("stageWeight") is not None:
            took = record.get("trafficSince") or f"never ({record.get('trafficDetail') or 'no data'})"
            lines.append(f"  took its traffic from: {took}")
        found = record.get("queries") or {}
        for measure, result in sorted(found.items(), key=lambda item: list(MEASURES).index(item[0])):
            shown = f"{result['value']:.6g}" if result.get("status") == "ok" else result.get("status")
            detail = f" ({result['detail']})" if result.get("detail") else ""
            if result.get("status") == "ok" and (result.get("tries") or 1) > 1:
                detail = f" (after {result['tries']} tries)"
            lines.append(f"  {MEASURES.get(measure, measure)}: {shown}{detail}")
        if record.get("detail"):
            lines.append(f"  {record['detail']}")
    return lines
