"""The services shipped (``rollout:services``): tracks, health checks, route and rollout history."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo, model_validator

from rollout.model.config.fields import (
    Count,
    Model,
    NonNegativeCount,
    Percentage,
    PositiveDuration,
    ServiceName,
    Timestamp,
    between,
)
from rollout.model.config.monitoring import Resources
from rollout.model.errors import KeyedError
from rollout.model.images import ImageReference
from rollout.model.plans import BUILTIN_PLANS, Plan, Stage
from rollout.model.releases import canary_replicas, same_release
from rollout.model.time import format_time

#: How far ahead of this machine's clock a history entry may be (clocks differ).
CLOCK_SKEW = timedelta(minutes=5)


#: An image reference in the distribution grammar (rollout.model.images).
Image = ImageReference


class TrackSettings(Model):
    """The canary track of a service."""

    image: Image
    """The release being rolled out: an image with a pinned tag or digest (a digest identifies the
    release when given); the policy pack refuses ``latest``. Change it with ``rollout release``: a
    new release starts a new rollout at 0 %.
    """
    replicas: NonNegativeCount = 2
    """The fewest pods the canary runs. At weight w it runs
    ``max(replicas, ceil(stable.replicas * w / 100))``, so it can carry its share at every stage.
    """


class StableTrackSettings(Model):
    """The stable track of a service."""

    image: Image
    """Image with a pinned tag or digest. It changes only to a release whose rollout completed in
    this stack (``rollout promote``) or back to ``previousImage`` (a revert).
    """
    replicas: NonNegativeCount = 2
    """Pods (or containers) of this track; it keeps them all at every weight."""
    previous_image: Image | None = None
    """The stable image before the last promote, written by ``rollout promote``: setting ``image``
    back to it is a revert.
    """


class CustomStage(Model):
    weight: Annotated[int, between(0, 100)]
    """The canary's traffic weight in this stage, percent."""
    soak: PositiveDuration
    """Minimum time in this stage before the next may begin."""


class HistoryEntry(Model):
    """One stage entered: its weight, when, the release and the plan. A rollback carries its reason."""

    weight: Percentage
    """The canary's traffic weight from this entry on, percent."""
    started_at: Timestamp
    """When the stage was recorded (UTC). The soak counts from when the stage took traffic, which
    the gate evidence measures (see docs/operations.md).
    """
    release: Image | None = None
    """The canary's image in this stage (written by ``rollout advance``, ``release``, ``promote``
    and ``rollback``); unset in entries written by hand.
    """
    plan: Literal["safe", "fast", "instant", "custom"] | None = None
    """The plan this stage was entered under; unset means the service's current plan. A plan may
    change mid-rollout: entries keep the plan they were written with.
    """
    reason: str | None = None
    """Why (required by ``rollout rollback``, ``override`` and ``resume``, optional otherwise)."""
    kind: Literal["stage", "override", "resume"] = "stage"
    """``stage`` (a stage entered: every entry written by ``advance``, ``release``, ``promote`` and
    ``rollback``), ``override`` (an emergency override of the freeze windows for this service, until
    ``until``: ``rollout override``) or ``resume`` (a fleet halt lifted: this stack's rollback of
    ``release`` no longer stops the stacks downstream, ``rollout resume``). An override or a resume
    keeps the weight of the entry before it and changes no stage."""
    by: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    """Who recorded an ``override`` or a ``resume`` (required for those, refused on a stage)."""
    until: Timestamp | None = None
    """When an ``override`` ends (UTC; required for an override, after its ``startedAt``)."""


class RolloutSettings(Model):
    """The service's rollout: its plan and the append-only history of stages."""

    plan: Literal["safe", "fast", "instant", "custom"] = "safe"
    """``safe`` (7 days), ``fast`` (3 days), ``instant`` or ``custom``."""
    stages: list[CustomStage] | None = None
    """The stages of a ``custom`` plan; only with plan: custom."""
    history: list[HistoryEntry] = Field(min_length=1)
    """Stages entered, oldest first; the last entry is the current weight. Append only."""

    @model_validator(mode="after")
    def _plan_and_history(self, info: ValidationInfo) -> "RolloutSettings":
        if self.plan == "custom":
            if not self.stages:
                raise KeyedError(("stages",), "is required with plan: custom (a list of weight and soak)")
            weights = [s.weight for s in self.stages]
            if weights[0] != 0 or any(b <= a for a, b in zip(weights, weights[1:])):
                raise KeyedError(
                    ("stages",), f"{weights} must start at 0 and be strictly increasing"
                )
            if weights[-1] != 100:
                raise KeyedError(("stages",), f"{weights} must end at 100")
        elif self.stages is not None:
            raise KeyedError(("stages",), f"is only for plan: custom; plan {self.plan} has its own")
        for index, entry in enumerate(self.history):
            if entry.kind == "stage":
                for key in ("by", "until"):
                    if getattr(entry, key) is not None:
                        raise KeyedError(("history", index, key), "is only for an override or a resume entry")
                continue
            if index == 0:
                raise KeyedError(("history", 0, "kind"), f"{entry.kind}: the first entry is a stage")
            if entry.weight != self.history[index - 1].weight:
                raise KeyedError(("history", index, "weight"), f"{entry.weight}: an {entry.kind} keeps the weight "
                                 f"of the entry before it ({self.history[index - 1].weight})")
            for key in ("by", "reason"):
                if not (getattr(entry, key) or "").strip():
                    raise KeyedError(("history", index, key), f"is required for an {entry.kind}: who and why")
            if entry.kind == "override" and (entry.until is None or entry.until <= entry.started_at):
                raise KeyedError(("history", index, "until"),
                                 "is required for an override and must be after its startedAt")
            if entry.kind == "resume" and entry.until is not None:
                raise KeyedError(("history", index, "until"), "is only for an override")
        for index, entry in enumerate(self.history):
            allowed = self.entry_weights(entry)
            if entry.weight not in allowed:
                written = entry.plan or self.plan
                raise KeyedError(
                    ("history", index, "weight"),
                    f"{entry.weight} is not a stage of plan {written}; "
                    f"allowed: {', '.join(map(str, allowed))}",
                )
        # The loader says what the present is (rollout.load.clock): a rehearsal's
        # --now counts as the present too, and a rollback tolerates the future.
        context = info.context or {}
        latest_allowed = context.get("present", datetime.now(timezone.utc)) + CLOCK_SKEW
        for index, entry in enumerate(self.history):
            if entry.started_at > latest_allowed and not context.get("tolerate_future", False):
                raise KeyedError(
                    ("history", index, "startedAt"),
                    f"{format_time(entry.started_at)} is in the future; a stage is recorded when it begins",
                )
        for index in range(1, len(self.history)):
            if self.history[index].started_at < self.history[index - 1].started_at:
                raise KeyedError(
                    ("history", index, "startedAt"),
                    f"is earlier than history[{index - 1}].startedAt; "
                    "the history is append-only and in time order",
                )
        return self

    @property
    def plan_model(self) -> Plan:
        if self.plan == "custom":
            return Plan("custom", tuple(Stage(s.weight, s.soak) for s in self.stages or ()))
        return BUILTIN_PLANS[self.plan]

    def entry_weights(self, entry: HistoryEntry) -> tuple[int, ...]:
        """The weights an entry may have: the stages of the plan it was written with.

        An entry that names its plan is a stage of that plan (a ``custom`` one of
        this service's stages). An entry without a plan may be a stage of the
        current plan or of any built-in plan: it may predate a plan change.
        """
        if entry.plan is not None and entry.plan != "custom":
            return BUILTIN_PLANS[entry.plan].weights
        if entry.plan == "custom":
            return tuple(s.weight for s in self.stages or ()) or tuple(range(101))
        known = {*self.plan_model.weights}
        for plan in BUILTIN_PLANS.values():
            known.update(plan.weights)
        return tuple(sorted(known))

    @property
    def current(self) -> HistoryEntry:
        """The last entry (an override or a resume keeps the stage of the one before)."""
        return self.history[-1]

    @property
    def stages_entered(self) -> list[HistoryEntry]:
        """The stage entries alone: what the plan's walk is made of."""
        return [entry for entry in self.history if entry.kind == "stage"]

    @property
    def weight(self) -> int:
        return self.current.weight


class ProbeSettings(Model):
    path: str = "/healthz"
    """HTTP path of the service's health endpoint (readiness, liveness and blackbox probes)."""
    period_seconds: Count = 10
    """Seconds between probes; the blackbox probe uses the scrape interval."""


_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")


def _hostname(value: str) -> str:
    if not isinstance(value, str) or len(value) > 253 or not _HOSTNAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a hostname: lowercase DNS labels separated by dots, optionally starting "
            "with '*.', e.g. genesis.example.com or *.example.com (no port, no IP address)"
        )
    return value


class PathMatch(Model):
    """A request path to match (Gateway API ``HTTPPathMatch``)."""

    type: Literal["PathPrefix", "Exact", "RegularExpression"] = "PathPrefix"
    """``PathPrefix`` (by whole path segments), ``Exact`` or ``RegularExpression``."""
    value: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^/")] = "/"
    """The path, starting with ``/``."""


class RouteMatch(Model):
    """One match of the service's HTTPRoute: a request matching any one of them is routed."""

    path: PathMatch = PathMatch()
    """The request path."""
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] | None = None
    """Only requests of this HTTP method; unset matches every method."""


class RouteSettings(Model):
    """Which requests on the shared Gateway reach the service (Kubernetes only)."""

    hostnames: list[Annotated[str, AfterValidator(_hostname)]] = []
    """Host names the service answers (the HTTPRoute's ``hostnames``). Empty takes every host the
    Gateway's listener accepts: on a shared Gateway, set them; ``rollout check`` warns outside development."""
    matches: Annotated[list[RouteMatch], Field(min_length=1, max_length=64)] = [RouteMatch()]
    """Requests routed to the service; the default is every path (``PathPrefix /``)."""


class ServiceSettings(Model):
    """A service shipped with a stable and a canary track."""

    name: ServiceName
    """Service name: a DNS-1035 label of at most 56 characters (it is rendered with -stable and -canary), used in every object name and as the ``service`` label."""
    port: Annotated[int, between(1, 65535)] = 8080
    """Port the service listens on and exposes metrics on."""
    stable: StableTrackSettings
    """The stable track."""
    canary: TrackSettings
    """The canary track: the release being rolled out."""
    resources: Resources
    """Requests and limits of each track's containers."""
    health: ProbeSettings = ProbeSettings()
    """Health checks."""
    rollout: RolloutSettings
    """The rollout plan and its history."""
    route: RouteSettings = RouteSettings()
    """The HTTPRoute's host names and matches on the shared Gateway."""

    def canary_replicas(self) -> int:
        """The canary's replicas at the current weight (see :func:`rollout.model.releases.canary_replicas`)."""
        return canary_replicas(self.rollout.weight, self.stable.replicas, self.canary.replicas, self.canary_idle)

    @property
    def canary_idle(self) -> bool:
        """The stable track runs the canary's release (promoted): the canary has nothing to try."""
        return same_release(self.canary.image, self.stable.image)


