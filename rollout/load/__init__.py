"""The load layer: reading and editing the outside world's files.

The strict YAML reader and the stack loader (file, key path and allowed values in
every error), secrets, the stack-file editor (append-only history, an edit lock,
line-by-line splicing), local Helm charts, atomic writes, and what the loader counts
as the present. May import :mod:`rollout.model` and :mod:`alerts` (the loader checks
alert names against the catalogue); nothing above.
"""
