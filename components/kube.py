"""One Kubernetes object declared from its rendered document.

rollout/build renders every object a stack deploys as a plain manifest (the
same documents ``rollout render`` writes), so the components only need to hand
each one to the Kubernetes provider. The provider SDK's typed classes
(``pulumi_kubernetes.core.v1.ConfigMap`` and the like) add nothing to a
finished manifest but their import: ``core.v1`` and the few other API groups a
stack uses build a few thousand typed input classes, about 0.4 s of processor
in every ``pulumi preview`` and ``pulumi up`` (docs/performance.md section 7).
:class:`KubernetesObject` registers the same resource the typed class would,
so state, URNs and diffs are unchanged:

- the same type token, ``kubernetes:<group or core>/<version>:<kind>``;
- the same inputs, the manifest's own fields (``apiVersion``, ``kind``,
  ``metadata`` and the rest, in the API's spelling);
- a Secret's ``data`` and ``stringData`` are Pulumi secrets, as inputs and
  outputs, as the typed Secret makes them.

Custom resources (HTTPRoute, PrometheusRule, Probe) are declared the same way:
their token and inputs are those of the SDK's generic
``apiextensions.CustomResource``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

#: Fields whose values are secrets, per kind (the typed classes' additional secret outputs).
SECRET_FIELDS = {"Secret": ("data", "stringData")}


def type_token(api_version: str, kind: str) -> str:
    """The provider's type token: ``v1`` is the core group (``kubernetes:core/v1:Secret``)."""
    group, _, version = api_version.rpartition("/")
    return f"kubernetes:{group or 'core'}/{version}:{kind}"


def _version() -> str:
    # The provider SDK's own version, which its typed classes put on every resource.
    from pulumi_kubernetes import _utilities

    return _utilities.get_version()


class KubernetesObject(pulumi.CustomResource):
    """``document`` (a manifest: apiVersion, kind, metadata, the kind's fields) as a provider resource.

    ``namespace`` is set on its metadata when given (it may be an Output). The
    object's ``metadata`` output is the manifest's metadata as the provider
    reports it (``obj.metadata["name"]``).
    """

    metadata: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        resource_name: str,
        document: Mapping[str, Any],
        namespace: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        kind = document["kind"]
        props = {key: value for key, value in document.items() if value is not None}
        metadata = {key: value for key, value in dict(props.get("metadata") or {}).items() if value is not None}
        if namespace is not None:
            metadata["namespace"] = namespace
        props["metadata"] = metadata
        secret_fields = SECRET_FIELDS.get(kind, ())
        for field in secret_fields:
            if field in props:
                props[field] = pulumi.Output.secret(props[field])
        own = pulumi.ResourceOptions(version=_version(), additional_secret_outputs=list(secret_fields) or None)
        super().__init__(
            type_token(document["apiVersion"], kind),
            resource_name,
            props,
            pulumi.ResourceOptions.merge(opts, own),
        )
