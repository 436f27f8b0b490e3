"""The pull-request comment of the Preview workflow: one per stack.

``pulumi preview`` through the Pulumi action can comment on a pull request, but
its comment carries the resource diff only, never the policy pack's verdict. The
workflow therefore posts its own comment per stack, built here from:

- the weight change of each service: the stack file at the pull request's base
  against the one under review (the same comparison ``rollout check --base``
  judges);
- the policy verdict: the real output and exit code of ``rollout check``, whose
  lines ``[mandatory|advisory] <policy> (<subject>): <message>`` become a table;
- the resource diff: the text ``pulumi preview`` printed, when it ran.

The first line is a hidden marker naming the stack, so the workflow finds its own
previous comment and edits it on a new push instead of adding another.

It also writes the policy config that hands ``rollout evidence``'s file to the
policy pack under ``pulumi preview --policy-pack-config`` (CrossGuard policies
cannot query anything themselves): the evidence under every gate policy, and
the resource policies lowered to advisory outside production, as ``rollout
check`` judges by tier.

Usage (what .github/workflows/preview.yml runs)::

    python -m rollout.comment --stack staging --policy-config-from evidence.json > policy-config.json
    python -m rollout.comment --stack staging --base "$BASE_SHA" \\
        --check-output check.txt --check-exit 1 [--preview preview.txt] > comment.md
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from rollout.checking import NoGitBase, config_at_ref
from rollout.errors import ConfigError, UsageError
from rollout.gates import GATE_POLICIES
from rollout.loader import load_stack
from rollout.state import rollout_state

#: The hidden first line that identifies a stack's comment (the workflow searches for it).
MARKER = "<!-- rollout-preview stack={stack} -->"
#: GitHub refuses comment bodies over 65536 characters; keep the diff well inside that.
MAX_PREVIEW_CHARS = 40_000

_VIOLATION = re.compile(r"^\[(?P<level>mandatory|advisory)\] (?P<policy>\S+) \((?P<subject>[^)]*)\): (?P<message>.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Violation:
    level: str
    policy: str
    subject: str
    message: str


@dataclass(frozen=True)
class WeightChange:
    service: str
    before: int | None
    after: int | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "new service"
        if self.after is None:
            return "service removed"
        if self.after > self.before:
            return "advance"
        if self.after < self.before:
            return "rollback"
        return "unchanged"


def parse_violations(check_output: str) -> list[Violation]:
    """Every violation line ``rollout check`` printed, in its order."""
    found = []
    for line in check_output.splitlines():
        match = _VIOLATION.match(line.strip())
        if match:
            found.append(Violation(**match.groupdict()))
    return found


def weight_changes(stack: str, project: Path, base: str) -> list[WeightChange]:
    """Each service's weight at ``base`` and in the working tree, sorted by service."""
    new = rollout_state(load_stack(stack, project), stack)["services"]
    try:
        old_config = config_at_ref(stack, project, base)
    except NoGitBase as err:
        raise UsageError(f"--base {base}: {err}") from None
    old = rollout_state(old_config, stack)["services"] if old_config is not None else {}
    return [
        WeightChange(name, old[name]["weight"] if name in old else None, new[name]["weight"] if name in new else None)
        for name in sorted(set(old) | set(new))
    ]


def _percent(weight: int | None) -> str:
    return "—" if weight is None else f"{weight}%"


def _cell(text: str) -> str:
    # A pipe would split the Markdown table cell; a newline would end the row.
    return text.replace("|", "\\|").replace("\n", " ")


def _fenced(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def build_comment(
    stack: str,
    changes: list[WeightChange],
    check_output: str,
    check_exit: int,
    preview_output: str | None = None,
    preview_note: str | None = None,
) -> str:
    """The Markdown body of the comment for one stack.

    ``check_exit`` is ``rollout check``'s exit code: 0 clean, 1 refused, 2 bad input.
    """
    violations = parse_violations(check_output)
    mandatory = [v for v in violations if v.level == "mandatory"]
    advisory = [v for v in violations if v.level == "advisory"]
    if check_exit == 0:
        verdict = "✅ **policy verdict: pass**"
    elif check_exit == 1:
        verdict = "❌ **policy verdict: refused**"
    else:
        verdict = f"⚠️ **policy verdict: not judged** (`rollout check` exited {check_exit}: bad input)"
    counts = f"{len(mandatory)} mandatory, {len(advisory)} advisory violation(s)"

    lines = [
        MARKER.format(stack=stack),
        f"### rollout preview: stack `{stack}`",
        "",
        f"{verdict}: {counts}",
        "",
        "#### Weight change",
        "",
        "| service | deployed (base) | this pull request | change |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c.service} | {_percent(c.before)} | {_percent(c.after)} | {c.kind} |" for c in changes]
    lines += ["", "#### Policy violations", ""]
    if violations:
        lines += ["| level | policy | subject | message |", "|---|---|---|---|"]
        lines += [f"| {v.level} | `{v.policy}` | {_cell(v.subject)} | {_cell(v.message)} |" for v in violations]
    else:
        lines.append("None.")
    lines += [
        "",
        "<details><summary><code>rollout check</code> output</summary>",
        "",
        _fenced(check_output),
        "",
        "</details>",
        "",
        "#### Resource diff",
        "",
    ]
    if preview_output is None:
        lines.append(preview_note or "`pulumi preview` did not run for this stack.")
    else:
        text = _ANSI.sub("", preview_output)
        if len(text) > MAX_PREVIEW_CHARS:
            text = text[:MAX_PREVIEW_CHARS] + f"\n... cut at {MAX_PREVIEW_CHARS} characters; the full diff is in the job log"
        lines += ["<details><summary><code>pulumi preview</code></summary>", "", _fenced(text), "", "</details>"]
    return "\n".join(lines) + "\n"


def policy_config(evidence: dict, production: bool) -> dict:
    """``--policy-pack-config`` for the pack: the evidence under each gate policy.

    The gate policies read ``evidence``, ``deployedState`` and ``upstreamState``
    from their config (policies/pack.py); outside production the resource
    policies are advisory (policies/config/advisory.json), as in ``rollout check``.
    """
    config: dict = {}
    if not production:
        config.update(json.loads((Path(__file__).resolve().parent.parent / "policies" / "config" / "advisory.json").read_text()))
    handed = {
        "evidence": evidence,
        "deployedState": evidence.get("deployedState"),
        "upstreamState": evidence.get("upstreamState"),
    }
    for name in GATE_POLICIES:
        config[name] = {"enforcementLevel": "mandatory", **{k: v for k, v in handed.items() if v is not None}}
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rollout.comment", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--project", type=Path, default=Path("."), help="the project directory (default: .)")
    parser.add_argument("--policy-config-from", type=Path, metavar="EVIDENCE", help="print the policy config for this evidence file, and nothing else")
    parser.add_argument("--base", help="the pull request's base commit")
    parser.add_argument("--check-output", type=Path, help="what `rollout check` printed")
    parser.add_argument("--check-exit", type=int, help="`rollout check`'s exit code")
    parser.add_argument("--preview", type=Path, help="what `pulumi preview` printed, when it ran")
    parser.add_argument("--preview-note", help="why there is no preview (shown instead of the diff)")
    args = parser.parse_args(argv)
    if args.policy_config_from is None and None in (args.base, args.check_output, args.check_exit):
        parser.error("the comment needs --base, --check-output and --check-exit")
    try:
        if args.policy_config_from is not None:
            evidence = json.loads(args.policy_config_from.read_text(encoding="utf-8"))
            production = load_stack(args.stack, args.project).tier == "production"
            json.dump(policy_config(evidence, production), sys.stdout, indent=2, sort_keys=True)
            sys.stdout.write("\n")
            return 0
        changes = weight_changes(args.stack, args.project, args.base)
        check_output = args.check_output.read_text(encoding="utf-8")
        preview = args.preview.read_text(encoding="utf-8") if args.preview else None
    except (ConfigError, UsageError) as err:
        print(f"rollout comment: {err}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:
        print(f"rollout comment: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(build_comment(args.stack, changes, check_output, args.check_exit, preview, args.preview_note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
