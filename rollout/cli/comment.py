"""The pull request's comment for one stack: weight change, policy verdict, the schedule as
a mermaid Gantt chart, every stack's status, the rendered files' diff, the resource diff.

Built from the real output of ``rollout check`` (the Pulumi action's own
comment leaves policy results out) and, when there is one, the preview's
resource summary. A hidden marker per stack lets the workflow find and update
its comment instead of adding another. Every value is placed escaped
(rollout.cli.markdown): none ends its table cell, code span or code block, and
each shows on one line.

``python -m rollout.cli.comment --stack S --base REF --check FILE --check-exit N [--preview FILE]
[--diff FILE] [--plan FILE] [--fleet-plan FILE] [--status FILE]``
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from rollout.cli.markdown import cell, code_block, code_span
from rollout.cli.options import find_project, stack_name
from rollout.gates.check import state_at_ref
from rollout.gates.confidence import INCONCLUSIVE, VERDICT_WORDS
from rollout.gates.judge import CANARY_WITHIN_BUDGET
from rollout.load.stack import load_stack
from rollout.model.errors import printable_lines
from rollout.model.state import rollout_state

MARKER = "<!-- rollout-preview:{stack} -->"
#: How the gate marks a measure the data cannot judge yet.
INCONCLUSIVE_MARK = VERDICT_WORDS[INCONCLUSIVE]
_VIOLATION = re.compile(r"^\[(mandatory|advisory)\] (\S+) \(([^)]*)\): (.*)$")
#: ``rollout check`` prints each safety setting the change loosens on a line of its own.
_LOOSENS = re.compile(r"^loosens: (.*)$")
#: ... and each emergency override of the freeze windows in effect (who, why, until when).
_OVERRIDE = re.compile(r"^override: (.*)$")


def weight_changes(old: dict | None, new: dict) -> list[str]:
    """One line per service: its weight before and after the change."""
    lines = []
    old_services = (old or {}).get("services") or {}
    for name, service in sorted((new.get("services") or {}).items()):
        before = (old_services.get(name) or {}).get("weight")
        after = service["weight"]
        if before is None:
            lines.append(f"{code_span(name)}: new, at {after} %")
        elif before == after:
            lines.append(f"{code_span(name)}: {after} % (unchanged)")
        else:
            kind = "advance" if after > before else "rollback"
            lines.append(f"{code_span(name)}: {before} % → {after} % ({kind})")
    return lines


#: GitHub refuses a comment over 65536 characters: a longer rendered diff is cut here.
MAX_DIFF_CHARS = 40000


def build(
    stack: str,
    check_output: str,
    exit_code: int,
    weights: list[str],
    preview: str | None = None,
    diff: str | None = None,
    plan: str | None = None,
    status: str | None = None,
    fleet_plan: str | None = None,
) -> str:
    violations = [m.groups() for line in check_output.splitlines() if (m := _VIOLATION.match(line))]
    mandatory = [v for v in violations if v[0] == "mandatory"]
    if exit_code == 2:
        verdict = "❌ **bad input**: the stack file does not load"
    elif mandatory and all(policy == CANARY_WITHIN_BUDGET and INCONCLUSIVE_MARK in message
                           for _, policy, _, message in mandatory):
        # Nothing failed: the evidence cannot tell yet (rollout.gates.confidence).
        verdict = (f"⏸️ **held**: {len(mandatory)} measure(s) inconclusive; the stage keeps soaking "
                   "(collect the evidence again later)")
    elif mandatory:
        verdict = f"❌ **refused**: {len(mandatory)} mandatory violation(s)"
    else:
        advisory = len(violations)
        verdict = "✅ **allowed**" + (f", {advisory} advisory note(s)" if advisory else "")
    lines = [MARKER.format(stack=stack), f"### rollout: {code_span(stack)}", "", f"Policy verdict: {verdict}", ""]
    lines += ["**Weights**", ""] + [f"- {w}" for w in weights] + [""]
    loosens = [m.group(1) for line in check_output.splitlines() if (m := _LOOSENS.match(line))]
    if loosens:
        # A reviewer sees every safety setting the change loosens (allowed only when no weight goes up).
        lines += ["**Loosens** (allowed only in a change that raises no weight)", ""]
        lines += [f"- loosens: {cell(what)}" for what in loosens] + [""]
    overrides = [m.group(1) for line in check_output.splitlines() if (m := _OVERRIDE.match(line))]
    if overrides:
        # An emergency override opens the freeze windows: who, why and until when, for every reviewer to see.
        lines += ["**Freeze overrides** (recorded in the history)", ""]
        lines += [f"- override: {cell(what)}" for what in overrides] + [""]
    if violations:
        lines += ["| level | policy | where | why |", "|---|---|---|---|"]
        lines += [f"| {level} | {code_span(policy, in_table=True)} | {cell(where)} | {cell(message)} |"
                  for level, policy, where, message in violations]
        lines.append("")
    if exit_code == 2:
        lines += [*code_block(check_output.strip()), ""]
    if plan and plan.strip():
        # GitHub renders a mermaid block as a picture: where the rollout stands.
        lines += ["**Schedule** (`rollout plan`)", "", *code_block(plan.strip(), "mermaid"), ""]
    if fleet_plan and fleet_plan.strip():
        lines += ["<details><summary>The fleet, wave by wave (rollout plan --all)</summary>", "",
                  *code_block(fleet_plan.strip(), "mermaid"), "", "</details>", ""]
    if status and status.strip():
        # A Markdown table (rollout status --all --format markdown): its cells are
        # escaped there; here each line is kept to one printable line.
        lines += ["<details><summary>Every stack (rollout status --all)</summary>", "", printable_lines(status.strip()), "",
                  "</details>", ""]
    if diff is not None:
        if diff.strip():
            shown = diff if len(diff) <= MAX_DIFF_CHARS else diff[:MAX_DIFF_CHARS] + "\n... (cut: run `rollout diff` for the rest)\n"
            files = sum(1 for line in diff.splitlines() if line.startswith("+++ "))
            lines += [f"<details><summary>Rendered files: {files} changed (rollout diff)</summary>", "",
                      *code_block(shown.rstrip("\n"), "diff"), "", "</details>", ""]
        else:
            lines += ["Rendered files: unchanged (`rollout diff`).", ""]
    if preview:
        lines += ["<details><summary>Resource changes (pulumi preview)</summary>", "", *code_block(preview.strip()), "",
                  "</details>", ""]
    lines.append("<sub>From `rollout check`; refreshed on every push.</sub>")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, type=stack_name)
    parser.add_argument("--base", required=True, help="the pull request's base commit")
    parser.add_argument("--check", type=Path, required=True, help="the output of rollout check")
    parser.add_argument("--check-exit", type=int, required=True, help="rollout check's exit code")
    parser.add_argument("--preview", type=Path, help="the output of pulumi preview")
    parser.add_argument("--diff", type=Path, help="the output of rollout diff")
    parser.add_argument("--plan", type=Path, help="the output of rollout plan --format mermaid")
    parser.add_argument("--status", type=Path, help="the output of rollout status --all --format markdown")
    parser.add_argument("--fleet-plan", type=Path, help="the output of rollout plan --all --format mermaid")
    args = parser.parse_args(argv)
    project = find_project()
    new = rollout_state(load_stack(args.stack, project), args.stack)
    old = state_at_ref(args.stack, project, args.base)
    def optional(path: Path | None) -> str | None:
        return path.read_text() if path and path.exists() else None

    sys.stdout.write(
        build(
            args.stack, args.check.read_text(), args.check_exit, weight_changes(old, new), optional(args.preview),
            diff=optional(args.diff), plan=optional(args.plan), status=optional(args.status),
            fleet_plan=optional(args.fleet_plan),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
