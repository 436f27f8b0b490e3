"""The history's stage changes as Grafana annotations: what the program creates through
Grafana's API and ``rollout render`` writes to grafana/stage-annotations.json."""

from __future__ import annotations

from dataclasses import dataclass

from rollout.model.config import StackConfig
from rollout.model.time import format_time


#: Tag of the stage-change annotations (with the stack's name as a second tag).
STAGE_TAG = "rollout-stage"


@dataclass(frozen=True)
class StageAnnotation:
    """One stage change of the history, as an annotation on the canary dashboard."""

    service: str
    time: str
    weight: int
    before: int | None
    reason: str | None

    @property
    def text(self) -> str:
        change = f"{self.before}% -> {self.weight}%" if self.before is not None else f"starts at {self.weight}%"
        kind = "" if self.before is None else (" (rollback)" if self.weight < self.before else " (advance)")
        return f"{self.service}: {change}{kind}" + (f": {self.reason}" if self.reason else "")

    def tags(self, stack: str) -> list[str]:
        return [STAGE_TAG, stack, f"service:{self.service}"]


def stage_annotations(config: StackConfig) -> list[StageAnnotation]:
    """Every entry of every service's history, in time order per service."""
    found = []
    for service in config.services:
        before = None
        for entry in service.rollout.history:
            found.append(StageAnnotation(service.name, format_time(entry.started_at), entry.weight, before, entry.reason))
            before = entry.weight
    return found
