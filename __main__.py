"""Entry point of the Pulumi program (see Pulumi.yaml): rollout.program.run."""

from rollout.program import run

run()
