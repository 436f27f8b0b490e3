"""The gates layer: may a stack's proposed state replace the deployed one?

The gate functions (:mod:`rollout.gates.judge`), what ``rollout check`` runs
(:mod:`rollout.gates.check`), the stage edits judged before they are written
(:mod:`rollout.gates.edits`) and the warnings of a valid config
(:mod:`rollout.gates.advice`). Pure judgement: no HTTP. May import
:mod:`rollout.build` and below; independent of :mod:`rollout.ops`.
"""
