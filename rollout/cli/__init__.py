"""The ``rollout`` command: the parser (:mod:`rollout.cli.app`) and one module per command.

The top layer: it may import every layer below (engine, ops, gates, build, load,
model). Nothing imports it but the console script and ``python -m rollout.cli``.
"""

from rollout.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
