"""ComponentResources, one module per deployable. They only declare resources:
everything they deploy is built by the pure builders in ``rollout`` and
``alerts``/``dashboards``, so the same bytes are rendered and tested."""
