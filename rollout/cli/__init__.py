"""The ``rollout`` command: the parser (:mod:`rollout.cli.app`) and one module per command.

A command module reads its arguments, calls the layer below and prints:
``render``, ``check``, ``status``, ``plan``, ``stages`` (advance, rollback, release,
promote), ``flags``, ``verify``, ``evidence``, ``relay``, ``diff``; ``comment`` is the
pull request's comment (``python -m rollout.cli.comment``). Shared: ``options`` (the
argument types), ``output`` (escaped lines, exit codes, errors), ``clock`` (``--now``)
and ``markdown``.

The top layer: it may import every layer below (engine, ops, gates, build, load,
model). Nothing imports it but the console script and ``python -m rollout.cli``.
"""

from rollout.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
