"""The pack's policies by name, description and enforcement: what the engine asks first.

The engine starts the pack before it runs the program, and waits for its list of
policies. Answering from the gates themselves would hold the program until they are
imported; policies/catalogue.json holds the answer instead, generated from
``policies.rules.POLICIES`` (``python -m policies.catalogue > policies/catalogue.json``),
while policies/__main__.py imports the gates in the background as the program runs.

It cannot drift silently: a test fails when the committed file is not the generated
one, and the pack fails closed when it is served stale (policies/pack.py: every
policy then reports a violation naming the command above).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FILE = Path(__file__).resolve().with_name("catalogue.json")


def entries(policies) -> list[dict]:
    """The catalogue of ``policies`` (rules.Policy): what CrossGuard is told of each, in order."""
    return [
        {"name": p.name, "description": p.description, "remediation": p.remediation,
         "alwaysMandatory": p.always_mandatory}
        for p in policies
    ]


def read() -> list[dict]:
    """The committed catalogue."""
    return json.loads(FILE.read_text())


def render() -> str:
    """The catalogue of the gates and policies as they are, as policies/catalogue.json holds it."""
    from policies.rules import POLICIES

    return json.dumps(entries(POLICIES), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
