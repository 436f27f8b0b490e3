"""rollout: the importable core, with no Pulumi resources in it.

Config model and loader, naming conventions, plans, pure builders, render and
the ``rollout`` command line.
"""
