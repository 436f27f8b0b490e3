"""The engine layer: the Pulumi program and what runs it.

The program (:mod:`rollout.engine.program`, which declares the ``components/``),
the harness that runs it under Pulumi's mocks (``rollout check``, ``render`` and
the tests), the policy runner that applies the pack's rules offline, and the
wrapper that serves the program to the real engine (``python -m rollout.engine``).
May import every layer below, ``components`` and ``policies``.
"""
