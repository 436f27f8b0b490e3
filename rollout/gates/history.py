"""The gates judged on every change: the history, the canary's release and the stable track.

``rollout-history-append-only``
    Every deployed history entry stays as it was (weight, start, release, plan,
    reason), also when the weight goes down: a rollback appends an entry. Only
    new entries follow. The first entry that differs is named.
``rollout-new-release-new-rollout``
    The canary's release changes only together with a new history entry at the
    plan's first stage (0 %): a new release starts a new rollout.
``rollout-stable-completed-release-only``
    ``stable.image`` changes only to the release whose rollout completed in this
    stack (100 % served for the plan's completion soak), or back to the stable
    image deployed before (``previousImage``, a revert).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rollout.gates.names import HISTORY_APPEND_ONLY, NEW_RELEASE_NEW_ROLLOUT, STABLE_COMPLETED_ONLY
from rollout.gates.ratchet import Pair
from rollout.model.releases import same_release
from rollout.model.time import format_time
from rollout.model.transition import Service

Found = list[tuple[str, str]]


def text(value: Any) -> str:
    return "unset" if value is None else str(value)


def history_append_only(pair: Pair) -> Found:
    old, new = pair.deployed, pair.proposed
    if old is None:
        return []
    took = f" (the deployed history of {pair.took_over}, whose route it serves)" if pair.took_over else ""
    for index, before in enumerate(old.history):
        shown = f"history[{index}]"
        was = f"{before.weight}% from {format_time(before.started_at)}"
        if index >= len(new.history):
            removing = " (a rollback appends an entry: `rollout rollback`)" if new.weight < old.weight else ""
            return [(HISTORY_APPEND_ONLY, f"{shown}{took} (the deployed {was}) is missing: the history is "
                     f"append-only; deployed entries are never removed{removing}")]
        entry = new.history[index]
        # Keys an older deployed state does not record are not compared.
        # The kind always: a deployed stage never turns into an override or a resume.
        changed = [k for k in dict.fromkeys((*before.recorded, "kind")) if entry.value(k) != before.value(k)]
        if changed:
            what = "; ".join(f"{k} {text(entry.value(k))}, deployed {text(before.value(k))}" for k in changed)
            lowered = (" (a lower weight is a new entry: `rollout rollback` appends one)"
                       if "weight" in changed and entry.weight < before.weight else "")
            return [(HISTORY_APPEND_ONLY, f"{shown}{took} differs from the deployed entry ({was}): {what}; "
                     f"the history is append-only: deployed entries never change{lowered}")]
    return []


def new_release_new_rollout(pair: Pair) -> Found:
    old, new = pair.deployed, pair.proposed
    if old is None:
        return []
    before, after = old.canary_image, new.canary_image
    if before is None or after is None or same_release(before, after):
        return []
    first = new.first_weight
    if len(new.history) > len(old.history) and new.weight == first:
        return []
    return [(NEW_RELEASE_NEW_ROLLOUT, f"the canary's image changes from {before} to {after} at {new.weight}%: "
             f"a new release starts a new rollout with a new {first}% history entry "
             f"(`rollout release --image {after}`)")]


def deployed_complete(deployed: Service, now: datetime) -> tuple[bool, str]:
    """Whether the deployed rollout completed (100 % for its final soak) at ``now``, and how it stands."""
    if deployed.weight != 100:
        return False, f"at {deployed.weight}%"
    soak, started = deployed.current_soak, deployed.stage_started_at
    if soak is None:
        return False, "at 100% off its plan"
    if now < started + soak:
        return False, f"at 100% since {format_time(started)}, complete from {format_time(started + soak)}"
    return True, f"complete since {format_time(started + soak)}"


def stable_completed_only(pair: Pair, now: datetime) -> Found:
    old, new = pair.deployed, pair.proposed
    if old is None:
        return []
    before, after, previous = old.stable_image, new.stable_image, old.previous_image
    if before is None or after is None:
        return []
    if same_release(before, after):
        if old.records_previous_image and new.previous_image != previous:
            return [(STABLE_COMPLETED_ONLY, f"stable.previousImage changes from {text(previous)} to "
                     f"{text(new.previous_image)} while stable.image stays {after}: only a promote or a revert "
                     "changes it")]
        return []
    canary = old.canary_image
    complete, standing = deployed_complete(old, now)
    found = []
    if same_release(after, canary) and complete:
        pass  # the release that completed here
    elif previous is not None and same_release(after, previous):
        pass  # a revert to the stable image deployed before
    else:
        if same_release(after, canary):
            why = f"its rollout here has not completed ({standing})"
        else:
            why = (f"no rollout of it completed here (the canary runs {text(canary)}, {standing}) and it is not "
                   f"the previous stable image ({text(previous)})")
        found.append((STABLE_COMPLETED_ONLY, f"stable.image changes from {before} to {after}, but {why}: "
                      "stable changes only to a completed release (`rollout promote`) or back (a revert)"))
    kept = new.previous_image
    if old.records_previous_image and kept not in (before, previous):
        found.append((STABLE_COMPLETED_ONLY, f"stable.previousImage is {text(kept)}; with stable.image changing "
                      f"from {before} it must be {before} (the image replaced)"))
    return found


__all__ = ["deployed_complete", "history_append_only", "new_release_new_rollout", "stable_completed_only", "text"]
