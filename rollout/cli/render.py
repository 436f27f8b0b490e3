"""``rollout render``: write the stack's artifacts to a folder (rollout.build.render)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rollout.build.render import render
from rollout.cli.output import EXIT_OK, say
from rollout.load.stack import load_stack
from rollout.model.errors import UsageError


def cmd_render(args: argparse.Namespace) -> int:
    config = load_stack(args.stack, args.project)
    try:
        written = render(config, args.stack, Path(args.out))
    except OSError as err:
        # --out names a file, a folder below a file, or a place that cannot be written.
        raise UsageError(f"--out {args.out}: cannot write {err.filename or args.out}: {err.strerror or err}") from None
    for path in written:
        say(path)
    return EXIT_OK
