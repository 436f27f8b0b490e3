"""``python -m rollout.cli``: the ``rollout`` command."""

import sys

from rollout.cli.app import main

sys.exit(main())
