"""``python -m rollout.engine PULUMI [ARGS...]``: the engine wrapper (rollout.engine.wrapper)."""

import sys

from rollout.engine.wrapper import exit_now, main

exit_now(main(sys.argv[1:]))
