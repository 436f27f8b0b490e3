"""Write docs/runbooks/: one runbook per alert of the shipped stacks, and the index.

    .venv/bin/python -m rollout.build.runbooks

The runbooks are rendered by :mod:`alerts.runbooks` from the alerts themselves;
this module loads the stacks whose alerts they describe (production first: its
thresholds are the ones a runbook quotes) and writes the files.
"""

from __future__ import annotations

import sys

from alerts.runbooks import REFERENCE_STACK, RUNBOOKS, ROOT
from alerts.runbooks import runbooks as render_runbooks
from rollout.load.stack import load_stack

#: The stacks whose alerts get a runbook; an alert is worded as the first one that has it.
STACKS = (REFERENCE_STACK, "staging", "dev", "local")


def runbooks() -> dict[str, str]:
    """File name -> text for every alert any shipped stack declares, plus the index."""
    return render_runbooks(load_stack(stack) for stack in STACKS)


def main() -> int:
    RUNBOOKS.mkdir(parents=True, exist_ok=True)
    wanted = runbooks()
    for stale in RUNBOOKS.glob("*.md"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        (RUNBOOKS / name).write_text(text)
    print(f"{len(wanted)} files in {RUNBOOKS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
