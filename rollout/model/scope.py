"""Which series belong to a stack: its namespace, on every series it writes and reads.

Stacks may share one Prometheus (``monitoring.install: false``) and even run
services of the same name. Every series a stack's rules, alerts, gates and
dashboards read is therefore scoped to the stack by the ``namespace`` label,
and every series its rules write carries it:

- scraped series carry it already: the operator labels each ServiceMonitor
  target with its Service's namespace, and the stack's Probes name it in their
  static labels (so does the rendered prometheus.yml, for every job);
- every recording rule and alert of the stack sets ``namespace`` (a rule
  label), so two stacks' recordings never collide and an alert reaches the
  ``AlertmanagerConfig`` of its own stack (the operator adds a
  ``namespace="<its namespace>"`` matcher to that config's routes);
- every selector of a rule, an evidence query or a dashboard panel matches
  ``namespace="<the stack's namespace>"``.

The namespace was chosen over a ``stack`` label added by relabeling because
the operator already sets it, on targets and in its AlertmanagerConfig
conversion alike. The Docker target runs a Prometheus of its own per stack and
has no namespace: its scope is empty and its selectors are unchanged.
"""

from __future__ import annotations

from rollout.model.config import StackConfig

NAMESPACE_LABEL = "namespace"


def labels(config: StackConfig) -> dict[str, str]:
    """The labels that identify the stack's series: ``{namespace: ...}`` on Kubernetes, none on Docker."""
    if config.target != "kubernetes" or config.kubernetes is None:
        return {}
    return {NAMESPACE_LABEL: config.kubernetes.namespace}


def matchers(config: StackConfig) -> list[str]:
    """The stack's label matchers, as PromQL text (``namespace="rollout-staging"``)."""
    return [f'{name}="{value}"' for name, value in labels(config).items()]


def select(config: StackConfig, metric: str, *extra: str) -> str:
    """``metric{<the stack's matchers>,<extra>}``; the bare name when there is nothing to match."""
    parts = matchers(config) + [m for m in extra if m]
    return metric + ("{" + ",".join(parts) + "}" if parts else "")
