"""The ops layer: talking to running systems.

HTTP with deadlines and caps (:mod:`rollout.ops.http`), gate evidence from
Prometheus (:mod:`rollout.ops.evidence`), the post-deploy verification
(:mod:`rollout.ops.verify`), the rollback relay and its fast path on the route
(:mod:`rollout.ops.relay`, :mod:`rollout.ops.fastpath`), and the CI pass-ratio
metric. May import :mod:`rollout.build` and below; independent of
:mod:`rollout.gates`.
"""
