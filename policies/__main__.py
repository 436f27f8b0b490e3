"""The rollout policy pack: `pulumi preview --policy-pack policies`.

The judging code is the code beside this file: its checkout comes first on the
path, so a pack run from a checkout of the base (``--policy-pack base/policies``)
judges with the base's gates, whatever the pull request's checkout holds.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack  # noqa: E402 - after the path: this checkout's code judges

from policies.pack import crossguard_policies  # noqa: E402

PolicyPack(name="rollout", policies=crossguard_policies())
