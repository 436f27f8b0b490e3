"""Everything a stack renders, built once by pure functions from the config.

The program deploys these exact bytes, ``rollout render`` writes them to disk,
and the tests check them with the real tools.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollout import flags
from rollout.config import StackConfig


@dataclass(frozen=True)
class Artifacts:
    stack: str
    #: The flagd flag document (flags/flags.json).
    flags_json: str

    def files(self) -> dict[str, str]:
        """Rendered files by path relative to the output folder, sorted."""
        out = {"flags/flags.json": self.flags_json}
        return dict(sorted(out.items()))


def build_artifacts(config: StackConfig, stack: str) -> Artifacts:
    return Artifacts(stack=stack, flags_json=flags.dumps(flags.flag_document(config, stack)))
