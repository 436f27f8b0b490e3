"""Entry point of the Pulumi program (see Pulumi.yaml): rollout.engine.program.run."""

from rollout.engine.program import run

run()
