"""The build layer: pure builders of every artifact a stack deploys.

Prometheus configuration and rules, Alertmanager routing, Helm values, Kubernetes
objects, traffic weights, the flagd document and its evaluation, the relay's
objects, the rendered tree (``rollout render``), the configuration reference and
the runbooks. Builders take config models and return plain data; they declare no
Pulumi resource, so the same bytes are deployed, rendered and tested. May import
:mod:`dashboards`, :mod:`rollout.load`, :mod:`alerts` and :mod:`rollout.model`.
"""
