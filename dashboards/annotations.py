"""The history's stage changes as Grafana annotations: what the program creates through
Grafana's API and ``rollout render`` writes to grafana/stage-annotations.json."""

from __future__ import annotations

from dataclasses import dataclass

from rollout.model.config import StackConfig
from rollout.model.releases import same_release
from rollout.model.time import format_time


#: Tag of the stage-change annotations (with the stack's name as a second tag).
STAGE_TAG = "rollout-stage"


@dataclass(frozen=True)
class StageAnnotation:
    """One stage change of the history, as an annotation on the canary dashboard.

    Its text says what the entry was: a ``release`` (0 % with a release the entry
    before did not run), a ``promote`` (0 % once the stable track took the release:
    ``promoted``), an ``advance`` (a higher weight) or a ``rollback`` (a lower weight
    of the same release); the first entry of a history ``starts`` the rollout.
    """

    service: str
    time: str
    weight: int
    before: int | None
    reason: str | None
    #: The release the entry records, and the one the entry before it recorded.
    release: str | None = None
    before_release: str | None = None
    #: The entry is the promote of its release (the stable track took it).
    promoted: bool = False

    @property
    def kind(self) -> str:
        if self.before is None:
            return "start"
        if self.promoted:
            return "promote"
        if self.release is not None and self.before_release is not None and not same_release(
            self.release, self.before_release
        ):
            return "release"
        if self.weight > self.before:
            return "advance"
        if self.weight < self.before:
            return "rollback"
        return "entry"

    @property
    def text(self) -> str:
        kind = self.kind
        if kind == "start":
            change = f"starts at {self.weight}%"
        elif kind == "release":
            change = f"release {self.release} starts at {self.weight}% (was {self.before_release} at {self.before}%)"
        elif kind == "promote":
            change = f"{self.release} promoted to stable; canary {self.before}% -> {self.weight}%"
        elif kind == "entry":
            change = f"{self.weight}% again"
        else:
            change = f"{self.before}% -> {self.weight}% ({kind})"
        return f"{self.service}: {change}" + (f": {self.reason}" if self.reason else "")

    def tags(self, stack: str) -> list[str]:
        return [STAGE_TAG, stack, f"service:{self.service}"]


def stage_annotations(config: StackConfig) -> list[StageAnnotation]:
    """Every entry of every service's history, in time order per service.

    A promote is the 0 % entry that follows 100 % of the release the stable
    track runs now (or ran before a later promote: ``stable.previousImage``)."""
    found = []
    for service in config.services:
        stable_releases = [image for image in (service.stable.image, service.stable.previous_image) if image]
        before, before_release = None, None
        for entry in service.rollout.history:
            promoted = (before == 100 and entry.weight == 0 and entry.release is not None
                        and same_release(entry.release, before_release)
                        and any(same_release(entry.release, image) for image in stable_releases))
            found.append(StageAnnotation(service.name, format_time(entry.started_at), entry.weight, before,
                                         entry.reason, entry.release, before_release, promoted))
            before, before_release = entry.weight, entry.release
    return found
