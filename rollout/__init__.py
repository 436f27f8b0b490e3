"""rollout: the importable core of the delivery system, one package per layer.

From the bottom up (docs/architecture.md; the import-linter contract in
pyproject.toml keeps every arrow pointing down):

- :mod:`rollout.model`: plain typed data and pure rules, no I/O;
- :mod:`rollout.load`: reading and editing the outside world's files;
- :mod:`rollout.build`: pure builders of every artifact the stacks deploy;
- :mod:`rollout.gates` and :mod:`rollout.ops`: the verdict on a transition, and
  talking to running systems;
- :mod:`rollout.engine`: the Pulumi program, its mocks harness and the engine wrapper;
- :mod:`rollout.cli`: the ``rollout`` command, one module per command.

Only :mod:`rollout.engine.program` (through ``components/``) declares Pulumi resources.
"""
