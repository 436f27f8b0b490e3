"""What the gates judge: a typed transition from the deployed state to the proposed one.

Every value here is parsed once, where it enters (the stack outputs, the
CrossGuard stash resource and policy config, the evidence file, a stack file at
a git base: :mod:`rollout.model.stored`), and is immutable afterwards. The gates
(:mod:`rollout.gates.judge`) take one :class:`Transition` and nothing else.

- :class:`DeployedState`: what the backend last applied (the ``rolloutState``
  output of the last ``pulumi up``), or, for a stack never deployed through the
  backend, the stack file at a git base; None when neither exists (never deployed).
- :class:`ProposedState`: the stack file as changed (the working tree, or the
  program's ``rollout-state`` stash in a preview).
- :class:`UpstreamState`: the state of a stack named by ``promotesFrom`` (one or several).
- :class:`FleetView`: the deployed states of the other stacks the fleet gates read
  (every stack upstream, the fleet-wide limit's group).
- :class:`Evidence`: the canary's SLIs over the deployed stage (``rollout evidence``).

A service is identified by its route (:class:`Route`: hostnames and matches),
not only by its key. Times are UTC datetimes, soaks timedeltas.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from rollout.model.time import format_time

#: Tiers from the most lenient to the strictest: the ratchet takes the later one.
TIERS = ("development", "staging", "production")


class Frozen(BaseModel):
    """Immutable, strict, and no key it does not declare."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Stage(Frozen):
    """One stage of a service's plan: the canary's weight and its minimum soak."""

    weight: int
    soak: timedelta


class Entry(Frozen):
    """One history entry: the weight entered at ``started_at``."""

    weight: int
    started_at: datetime
    release: str | None = None
    plan: str | None = None
    reason: str | None = None
    #: ``stage``, or ``override`` (of the freeze windows, until ``until``) or ``resume`` (of a fleet halt):
    #: those two keep the stage of the entry before them.
    kind: str = "stage"
    #: Who recorded an override or a resume.
    by: str | None = None
    #: When an override ends.
    until: datetime | None = None
    #: The keys the entry was stored with (an older state records fewer; only those are compared).
    recorded: tuple[str, ...] = ("weight", "startedAt", "release", "plan", "reason")

    def value(self, key: str):
        """The entry's value under its stored key (``startedAt`` and ``until`` as stored text)."""
        if key == "startedAt":
            return format_time(self.started_at)
        if key == "until":
            return format_time(self.until) if self.until is not None else None
        return getattr(self, key)

    @property
    def is_stage(self) -> bool:
        return self.kind == "stage"


class Route(Frozen):
    """What a service serves: the HTTPRoute's host names and matches (canonical JSON each)."""

    hostnames: tuple[str, ...]
    matches: tuple[str, ...]

    @property
    def identity(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return tuple(sorted(set(self.hostnames))), tuple(sorted(set(self.matches)))

    def shown(self) -> str:
        hosts = ", ".join(self.identity[0]) or "every host"
        return f"{hosts} ({len(self.matches)} match{'es' if len(self.matches) != 1 else ''})"


class Service(Frozen):
    """One service of a stack: its plan, history, tracks and route."""

    name: str
    plan: str
    stages: tuple[Stage, ...]
    history: tuple[Entry, ...]
    weight: int
    stage_started_at: datetime
    #: The minimum soak of the current stage under the plan it was entered with (None: unknown).
    stage_soak: timedelta | None = None
    canary_image: str | None = None
    stable_image: str | None = None
    previous_image: str | None = None
    #: Whether the state records ``stable.previousImage`` at all (an older state does not).
    records_previous_image: bool = True
    #: None: a state that does not record the route (older than identity by route).
    route: Route | None = None

    def soak_at(self, weight: int) -> timedelta | None:
        """The minimum soak of the stage at ``weight`` in this service's plan (None: not a stage)."""
        return next((stage.soak for stage in self.stages if stage.weight == weight), None)

    @property
    def current_soak(self) -> timedelta | None:
        return self.stage_soak if self.stage_soak is not None else self.soak_at(self.weight)

    @property
    def weights(self) -> tuple[int, ...]:
        return tuple(stage.weight for stage in self.stages)

    def next_weight(self, weight: int) -> int | None:
        """The plan's first stage above ``weight`` (a plan changed mid-rollout goes on from there)."""
        return next((w for w in self.weights if w > weight), None)

    @property
    def first_weight(self) -> int:
        return self.stages[0].weight if self.stages else 0

    @property
    def stage_history(self) -> tuple[Entry, ...]:
        """The stage entries alone (no override or resume): the walk of the plan."""
        return tuple(entry for entry in self.history if entry.is_stage)


class Thresholds(Frozen):
    """The canary's budget and how fresh its evidence must be."""

    max_error_ratio: float | None = None
    max_latency_p95_seconds: float | None = None
    max_latency_p99_seconds: float | None = None
    max_consecutive_failed_health_checks: float | None = None
    min_requests: float | None = None
    evidence_max_age: timedelta | None = None
    #: How the traffic measures are judged (rollout.gates.confidence; rollout.model.config.confidence).
    confidence: float | None = None
    negligible: float | None = None
    tolerance_error_ratio: float | None = None
    tolerance_latency_p95: float | None = None
    tolerance_latency_p99: float | None = None


#: Each threshold: its stored key, and whether a lower value is the stricter one.
THRESHOLDS: dict[str, tuple[str, bool]] = {
    "max_error_ratio": ("maxErrorRatio", True),
    "max_latency_p95_seconds": ("maxLatencyP95Seconds", True),
    "max_latency_p99_seconds": ("maxLatencyP99Seconds", True),
    "max_consecutive_failed_health_checks": ("maxConsecutiveFailedHealthChecks", True),
    "min_requests": ("minRequests", False),
    "evidence_max_age": ("evidenceMaxAgeSeconds", True),
    # A higher confidence, a lower tolerance or negligible share each make a pass harder.
    "confidence": ("confidence", False),
    "negligible": ("negligible", True),
    "tolerance_error_ratio": ("toleranceErrorRatio", True),
    "tolerance_latency_p95": ("toleranceLatencyP95", True),
    "tolerance_latency_p99": ("toleranceLatencyP99", True),
}
#: The config key of each confidence setting, for messages (``canary.<key>``).
CONFIG_KEYS = {
    "confidence": "confidence.level",
    "negligible": "confidence.negligible",
    "toleranceErrorRatio": "confidence.tolerance.errorRatio",
    "toleranceLatencyP95": "confidence.tolerance.latencyP95",
    "toleranceLatencyP99": "confidence.tolerance.latencyP99",
}


class FreezeWindow(Frozen):
    """A freeze window as written (``rollout.model.freeze`` reads it)."""

    name: str
    start: str
    end: str


class Freeze(Frozen):
    """A stack's freeze windows, their time zone and whether an override may open them."""

    time_zone: str = "UTC"
    allow_override: bool = False
    windows: tuple[FreezeWindow, ...] = ()


class StackState(Frozen):
    """A stack's rollout state: every setting a gate reads."""

    stack: str | None
    tier: str | None = None
    #: The stacks ``promotesFrom`` names (none: the stack promotes from no other).
    promotes_from: tuple[str, ...] = ()
    #: The fleet-wide limit's group and its limit (None: the stack counts against no limit).
    fleet_group: str | None = None
    fleet_limit: int | None = None
    #: Services that move together, by group name.
    release_groups: dict[str, tuple[str, ...]] = {}
    freeze: Freeze = Freeze()
    #: Where the stack's objects live (Kubernetes namespace); None: not recorded or not Kubernetes.
    namespace: str | None = None
    thresholds: Thresholds = Thresholds()
    safety_flags_on: tuple[str, ...] = ()
    services: dict[str, Service]


class DeployedState(StackState):
    """What the backend last applied (or the stack file at the git base, as the fallback)."""


class ProposedState(StackState):
    """The state the change would deploy."""


class UpstreamState(StackState):
    """The state of the stack named by ``promotesFrom``."""


class Measure(Frozen):
    """One query's outcome in the evidence; only status ``ok`` carries a finite value."""

    #: None: no record of the measure (or not an object).
    status: str | None = None
    value: float | None = None
    detail: str | None = None
    #: For a count of slow requests: the latency bound it counted above.
    seconds: float | None = None


class LiveRoute(Frozen):
    """The canary's weight in the live HTTPRoute (``rollout evidence --live-routes``)."""

    canary_weight: float
    set_by_relay: bool = False
    #: The route came with its managedFields (who wrote each field); kubectl hides them by default.
    writers_known: bool = True


class ServiceEvidence(Frozen):
    """The evidence of one service over its deployed stage."""

    stage_weight: int | None = None
    stage_started_at: datetime | None = None
    #: As written, for messages.
    stage_weight_text: str = "None"
    stage_started_text: str = "None"
    release: str | None = None
    records_release: bool = False
    #: ``absent`` (an older evidence file), ``none`` (no sign of traffic), ``time`` or ``unreadable``.
    traffic: str = "absent"
    traffic_since: datetime | None = None
    traffic_text: str = ""
    live_route: LiveRoute | None = None
    measures: dict[str, Measure] = {}


class Evidence(Frozen):
    """``rollout evidence``'s document, as far as the gates read it."""

    #: Why it is not evidence at all (not a JSON object); None when it is.
    problem: str | None = None
    stack: str | None = None
    stack_text: str = "None"
    collected_at: datetime | None = None
    services: dict[str, ServiceEvidence] = {}


class FleetView(Frozen):
    """What the fleet gates read beyond the upstreams: the deployed states of other stacks.

    ``ancestors``: every stack upstream of this one (``promotesFrom``, followed to the
    roots), whose rollbacks halt it; ``groups``: the stacks of each fleet-limit group
    this stack names (deployed or proposed), itself left out; ``states``: each of
    those stacks' deployed state, read once; ``proposed``: the group's stacks as their
    files propose them; ``problems``: why a state could not be read.
    """

    ancestors: tuple[str, ...] = ()
    groups: dict[str, tuple[str, ...]] = {}
    states: dict[str, UpstreamState] = {}
    #: The state each group stack's file proposes (a change that starts two of them at once counts both).
    proposed: dict[str, UpstreamState] = {}
    problems: dict[str, str] = {}


class Transition(Frozen):
    """One proposed change of a stack, with everything it is judged against."""

    deployed: DeployedState | None
    proposed: ProposedState
    #: The upstream state when the stack promotes from one stack (the first of several).
    upstream: UpstreamState | None = None
    #: Every upstream's state by stack name (``promotesFrom`` naming several), ``upstream`` included.
    upstreams: dict[str, UpstreamState] = {}
    #: Why an upstream's state could not be read, by stack name.
    upstream_problems: dict[str, str] = {}
    #: The other stacks the fleet gates read (None: not known, e.g. a transition built without them).
    fleet: FleetView | None = None
    evidence: Evidence | None = None
    now: datetime
    #: Why the deployed state could not be read (then nothing above 0 % can be judged).
    deployed_problem: str | None = None
    #: Why the upstream state could not be read.
    upstream_problem: str | None = None
    #: The files the change touches, relative to the project (None: not known, e.g. no git base).
    changed_files: tuple[str, ...] | None = None

    @property
    def never_deployed(self) -> bool:
        return self.deployed is None and self.deployed_problem is None

    def upstream_of(self, name: str) -> tuple[UpstreamState | None, str | None]:
        """The state of the upstream stack ``name``, or why there is none."""
        if name in self.upstreams:
            return self.upstreams[name], None
        if name in self.upstream_problems:
            return None, self.upstream_problems[name]
        if self.upstream is not None and (self.upstream.stack == name or not self.upstreams):
            return self.upstream, None
        if self.upstream_problem and not self.upstreams:
            return None, self.upstream_problem
        return None, None


__all__ = [
    "TIERS",
    "DeployedState",
    "Entry",
    "Evidence",
    "FleetView",
    "Freeze",
    "FreezeWindow",
    "LiveRoute",
    "Measure",
    "ProposedState",
    "Route",
    "Service",
    "ServiceEvidence",
    "Stage",
    "StackState",
    "CONFIG_KEYS",
    "THRESHOLDS",
    "Thresholds",
    "Transition",
    "UpstreamState",
]
