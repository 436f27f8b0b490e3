"""``python -m rollout.engine PULUMI [ARGS...]``: the engine wrapper (rollout.engine.wrapper)."""

import sys

from rollout.engine.wrapper import main

sys.exit(main(sys.argv[1:]))
