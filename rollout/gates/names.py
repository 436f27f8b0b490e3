"""The gates by name: each one's policy name, description and remediation, and a violation.

Every gate is mandatory; the policy pack presents each as a stack policy under
its name, and ``rollout check`` prints the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class GatePolicy:
    """A gate as the policy pack presents it: name, description, remediation."""

    name: str
    description: str
    remediation: str


HISTORY_APPEND_ONLY = "rollout-history-append-only"
NEW_RELEASE_NEW_ROLLOUT = "rollout-new-release-new-rollout"
STABLE_COMPLETED_ONLY = "rollout-stable-completed-release-only"
NEXT_STAGE_ONLY = "rollout-next-stage-only"
SOAK_SERVED = "rollout-soak-served"
CANARY_WITHIN_BUDGET = "rollout-canary-within-budget"
STAGING_FIRST = "rollout-staging-first"
NO_SAFETY_FLAG_ON_ADVANCE = "rollout-no-safety-flag-on-advance"
LIVE_ROUTE_RESPECTED = "rollout-live-route-respected"
NO_LOOSENING_ON_ADVANCE = "rollout-no-loosening-on-advance"
STACK_FILES_ONLY = "rollout-stack-files-only"
FLEET_HALT = "rollout-fleet-halt"
FLEET_LIMIT = "rollout-fleet-limit"
RELEASE_GROUP_IN_STEP = "rollout-release-group-in-step"
FREEZE_WINDOW = "rollout-freeze-window"

#: Every gate by name, in the order they are judged. All are mandatory.
GATE_POLICIES: dict[str, GatePolicy] = {
    policy.name: policy
    for policy in (
        GatePolicy(
            HISTORY_APPEND_ONLY,
            "Every deployed history entry stays as it was (weight, start, release, plan, reason); "
            "only new entries may follow it.",
            "Restore the deployed entries and append new ones with `rollout advance`, `rollout release` "
            "or `rollout rollback`.",
        ),
        GatePolicy(
            NEW_RELEASE_NEW_ROLLOUT,
            "The canary's release changes only with a new history entry at the plan's first stage (0%): "
            "a new release starts a new rollout.",
            "Start the release with `rollout release --image IMAGE`, which sets the canary's image and "
            "appends weight 0.",
        ),
        GatePolicy(
            STABLE_COMPLETED_ONLY,
            "The stable track's image changes only to the release whose rollout completed in this stack, "
            "or back to the stable image deployed before (a revert).",
            "Promote a completed rollout with `rollout promote`; to revert, set stable.image to "
            "stable.previousImage.",
        ),
        GatePolicy(
            NEXT_STAGE_ONLY,
            "A rollout advance goes to the plan's first stage above the deployed weight, and no other.",
            "Advance one stage at a time with `rollout advance`; a lower weight (rollback) is always allowed.",
        ),
        GatePolicy(
            SOAK_SERVED,
            "The deployed stage has soaked at least its minimum before the next stage begins.",
            "Wait until `rollout status` shows the earliest advance time, then run `rollout advance` again.",
        ),
        GatePolicy(
            CANARY_WITHIN_BUDGET,
            "Fresh gate evidence shows the canary within its budget over the deployed stage "
            "(error ratio, P95, P99, consecutive failed health checks, minimum requests).",
            "Collect evidence with `rollout evidence` and pass it with --evidence; if the canary is over "
            "budget, fix it or roll back with `rollout rollback`.",
        ),
        GatePolicy(
            STAGING_FIRST,
            "A stack with promotesFrom enters a stage of a release only after the upstream stack "
            "completed that stage with the same release.",
            "Release the same image in the upstream stack (promotesFrom), advance it to this stage and "
            "let it soak first.",
        ),
        GatePolicy(
            NO_SAFETY_FLAG_ON_ADVANCE,
            "No safety flag (emergency_shutdown, read_only_mode, maintenance_mode) is on during an advance.",
            "Switch the safety flag off in a change of its own before advancing the rollout.",
        ),
        GatePolicy(
            LIVE_ROUTE_RESPECTED,
            "A canary the relay took out of traffic in the cluster (live route weight 0) gets no traffic "
            "again before the history records its rollback.",
            "Record the rollback with `rollout rollback` (the Rollback workflow does) and deploy that first.",
        ),
        GatePolicy(
            NO_LOOSENING_ON_ADVANCE,
            "A change that raises a weight loosens no safety setting (the service set and routes, promotesFrom, "
            "the plan and its soaks, the tier, the thresholds, the safety flags, the namespace).",
            "Land the loosening in a change of its own that raises no weight (the check lists it as "
            "'loosens: ...'), then advance.",
        ),
        GatePolicy(
            STACK_FILES_ONLY,
            "A change that raises a weight changes nothing but stack files: code, policies, plans and "
            "workflows land in changes of their own, judged by the gates as they are at the base.",
            "Move the other files into a change of their own; advance in a change that edits only stacks/.",
        ),
        GatePolicy(
            FLEET_HALT,
            "A rollback of a release in any stack upstream of this one (promotesFrom, followed to the roots) halts "
            "every advance of that release here, until a new release or a resume recorded in that stack's history.",
            "Release a fixed image (`rollout release`), or, when the rollback was not the release's fault, record "
            "`rollout resume --stack <the stack that rolled back> --by WHO --reason WHY`.",
        ),
        GatePolicy(
            FLEET_LIMIT,
            "At most fleet.maxInProgress stacks of a fleet group hold a release above 0% before one of them "
            "completed it (read from the deployed states of the group's stacks).",
            "Wait until a stack of the group completes the release (100% for its final soak, or promoted), or "
            "until a stack ahead of this one rolls back.",
        ),
        GatePolicy(
            RELEASE_GROUP_IN_STEP,
            "No member of a release group enters a stage before every member completed the stage below.",
            "Advance the group's members together (`rollout advance` without --service advances each), after "
            "each completed its stage; a rollback of one member is a rollback of the group.",
        ),
        GatePolicy(
            FREEZE_WINDOW,
            "No advance, release or promote begins inside a freeze window, unless an emergency override "
            "recorded in the service's history (who, why, until when) covers it on a stack that allows overrides.",
            "Wait until the window ends (`rollout plan` dates the next stages after it), or record an override "
            "with `rollout override --by WHO --reason WHY --until TIME` where freeze.allowOverride is true.",
        ),
    )
}

@dataclass(frozen=True)
class GateViolation:
    """A refused advance: which gate, which service, and why (one sentence)."""

    policy: str
    service: str
    message: str
