"""The rollout policy pack: `pulumi preview --policy-pack policies`.

The judging code is the code beside this file: its checkout comes first on the
path, so a pack run from a checkout of the base (``--policy-pack base/policies``)
judges with the base's gates, whatever the pull request's checkout holds.

The engine waits for the pack's list of policies before it runs the program: the
pack answers from policies/catalogue.json and imports the gates in the background,
beside the program's run, rather than before it (policies/catalogue.py). And the
engine waits for the pack to exit once it has its verdict: it interrupts the pack,
which then leaves at once rather than tearing its interpreter down (about 0.1 s of
every preview).
"""

import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack  # noqa: E402 - after the path: this checkout's code judges

from policies import catalogue  # noqa: E402
from policies.pack import crossguard_policies  # noqa: E402

# pulumi-policy serves until interrupted, then stops its server and returns: nothing of
# the pack's is left to do by then, so the interrupt ends the process.
signal.signal(signal.SIGINT, lambda _signum, _frame: os._exit(0))
threading.Thread(target=__import__, args=("policies.rules",), name="import-gates", daemon=True).start()
PolicyPack(name="rollout", policies=crossguard_policies(catalogue.read()))
