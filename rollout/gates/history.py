"""The gates judged on every change: the history, the canary's release and the stable track.

``rollout-history-append-only``
    Every deployed history entry stays as it was (weight, start, release, plan,
    reason); only new entries follow. The first entry that differs is named.
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
from typing import Any, Mapping

from rollout.gates.names import HISTORY_APPEND_ONLY, NEW_RELEASE_NEW_ROLLOUT, STABLE_COMPLETED_ONLY
from rollout.model.releases import same_release
from rollout.model.state import current_soak
from rollout.model.time import format_time, parse_time


def _stored(why: str | None) -> str | None:
    return why and f"the stored state of the service {why}"


def unreadable_service(service: Any) -> str | None:
    """Why a stored service state (deployed or upstream) cannot be judged, as a predicate
    ("has no weight"); None when it can."""
    if not isinstance(service, Mapping):
        return "is not an object"
    weight = service.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int):
        return "has no weight"
    try:
        parse_time(service.get("stageStartedAt"))
    except ValueError:
        return "has no readable stageStartedAt"
    stages = service.get("stages")
    if not isinstance(stages, list) or not all(
        isinstance(stage, Mapping) and isinstance(stage.get("weight"), int) and isinstance(stage.get("soakSeconds"), int)
        for stage in stages
    ):
        return "has no readable stages"
    return None


def _history_append_only(new: Mapping[str, Any], deployed: Mapping[str, Any] | None):
    if not deployed:
        return []
    history = new.get("history") or []
    for index, before in enumerate(deployed["history"]):
        shown = f"history[{index}]"
        if not isinstance(before, Mapping):
            return [(HISTORY_APPEND_ONLY, f"{shown}: the deployed entry is unreadable")]
        was = f"{before.get('weight')}% from {before.get('startedAt')}"
        if index >= len(history):
            return [(HISTORY_APPEND_ONLY, f"{shown} (the deployed {was}) is missing: the history is append-only; "
                     "deployed entries are never removed")]
        entry = history[index]
        # Keys an older deployed state does not record are not compared.
        keys = [k for k in ("weight", "startedAt", "release", "plan", "reason") if k in before]
        changed = [k for k in keys if entry.get(k) != before.get(k)]
        if changed:
            what = "; ".join(f"{k} {_text(entry.get(k))}, deployed {_text(before.get(k))}" for k in changed)
            return [(HISTORY_APPEND_ONLY, f"{shown} differs from the deployed entry ({was}): {what}; "
                     "the history is append-only: deployed entries never change")]
    return []


def _rollback_appended(new: Mapping[str, Any], deployed: Mapping[str, Any] | None):
    if not deployed:
        return []
    deployed_history, history = deployed.get("history") or [], new.get("history") or []
    if len(history) >= len(deployed_history):
        return []
    return _history_append_only(new, deployed) or [(HISTORY_APPEND_ONLY, f"the history goes from {deployed['weight']}% to {new['weight']}% by removing "
             f"deployed entries ({len(deployed_history)} deployed, {len(history)} now); a rollback appends an "
             "entry (`rollout rollback`)")]


def _text(value: Any) -> str:
    return "unset" if value is None else str(value)


def _new_release_new_rollout(new: Mapping[str, Any], deployed: Mapping[str, Any] | None):
    if not deployed:
        return []
    before = (deployed.get("canary") or {}).get("image")
    after = (new.get("canary") or {}).get("image")
    if before is None or after is None or same_release(before, after):
        return []
    history = new.get("history") or []
    first = new["stages"][0]["weight"] if new.get("stages") else 0
    starts = len(history) > len(deployed.get("history") or []) and new["weight"] == first
    if starts:
        return []
    return [(NEW_RELEASE_NEW_ROLLOUT, f"the canary's image changes from {before} to {after} at {new['weight']}%: "
             f"a new release starts a new rollout with a new {first}% history entry "
             f"(`rollout release --image {after}`)")]


def _deployed_complete(deployed: Mapping[str, Any], now: datetime) -> tuple[bool, str]:
    """Whether the deployed rollout completed (100 % for its final soak) at ``now``, and how it stands."""
    weight = deployed["weight"]
    if weight != 100:
        return False, f"at {weight}%"
    soak = current_soak(deployed)
    started = parse_time(deployed["stageStartedAt"])
    if soak is None:
        return False, "at 100% off its plan"
    if now < started + soak:
        return False, f"at 100% since {format_time(started)}, complete from {format_time(started + soak)}"
    return True, f"complete since {format_time(started + soak)}"


def _stable_completed_only(new: Mapping[str, Any], deployed: Mapping[str, Any] | None, now: datetime):
    if not deployed or not isinstance(deployed.get("stable"), Mapping):
        return []
    was, now_stable = deployed["stable"], new.get("stable") or {}
    before, after = was.get("image"), now_stable.get("image")
    previous = was.get("previousImage")
    if before is None or after is None:
        return []
    if same_release(before, after):
        if "previousImage" in was and now_stable.get("previousImage") != previous:
            return [(STABLE_COMPLETED_ONLY, f"stable.previousImage changes from {_text(previous)} to "
                     f"{_text(now_stable.get('previousImage'))} while stable.image stays {after}: only a promote "
                     "or a revert changes it")]
        return []
    canary = (deployed.get("canary") or {}).get("image")
    complete, standing = _deployed_complete(deployed, now)
    found = []
    if same_release(after, canary) and complete:
        pass  # the release that completed here
    elif previous is not None and same_release(after, previous):
        pass  # a revert to the stable image deployed before
    else:
        if same_release(after, canary):
            why = f"its rollout here has not completed ({standing})"
        else:
            why = (f"no rollout of it completed here (the canary runs {_text(canary)}, {standing}) and it is not "
                   f"the previous stable image ({_text(previous)})")
        found.append((STABLE_COMPLETED_ONLY, f"stable.image changes from {before} to {after}, but {why}: "
                      "stable changes only to a completed release (`rollout promote`) or back (a revert)"))
    kept = now_stable.get("previousImage")
    if "previousImage" in was and kept not in (before, previous):
        found.append((STABLE_COMPLETED_ONLY, f"stable.previousImage is {_text(kept)}; with stable.image changing "
                      f"from {before} it must be {before} (the image replaced)"))
    return found
