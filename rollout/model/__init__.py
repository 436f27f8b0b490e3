"""The model layer: plain typed data and pure rules, no I/O.

Time and durations, naming conventions, pinned versions, the rollout plans,
releases, the validated stack config (:mod:`rollout.model.config`), the rollout
state a stack exports, and the evidence format. Imports nothing of rollout
outside this package: every other layer may import it.
"""
