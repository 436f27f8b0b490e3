"""components.kube: an object declared from its manifest is the resource the provider SDK's typed class declares."""

from __future__ import annotations

import pytest

from components.kube import SECRET_FIELDS, type_token


@pytest.mark.parametrize(
    ("api_version", "kind", "token"),
    [
        ("v1", "Secret", "kubernetes:core/v1:Secret"),
        ("v1", "Namespace", "kubernetes:core/v1:Namespace"),
        ("apps/v1", "Deployment", "kubernetes:apps/v1:Deployment"),
        ("policy/v1", "PodDisruptionBudget", "kubernetes:policy/v1:PodDisruptionBudget"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"),
        ("networking.k8s.io/v1", "NetworkPolicy", "kubernetes:networking.k8s.io/v1:NetworkPolicy"),
    ],
)
def test_the_type_token_is_the_typed_classes(api_version, kind, token):
    assert type_token(api_version, kind) == token


def test_the_type_tokens_match_the_provider_sdks_typed_classes():
    # The typed classes are the reference: the same token keeps every URN, so no stack
    # sees a replacement (tests/test_engine.py deploys and previews through the engine).
    import pulumi_kubernetes as k8s

    for cls, api_version in (
        (k8s.core.v1.Secret, "v1"),
        (k8s.core.v1.ConfigMap, "v1"),
        (k8s.core.v1.Service, "v1"),
        (k8s.core.v1.ServiceAccount, "v1"),
        (k8s.apps.v1.Deployment, "apps/v1"),
        (k8s.policy.v1.PodDisruptionBudget, "policy/v1"),
        (k8s.networking.v1.NetworkPolicy, "networking.k8s.io/v1"),
        (k8s.rbac.v1.Role, "rbac.authorization.k8s.io/v1"),
        (k8s.rbac.v1.RoleBinding, "rbac.authorization.k8s.io/v1"),
    ):
        source = __import__("inspect").getsource(cls._internal_init)
        assert f"'{type_token(api_version, cls.__name__)}'" in source, cls


def test_the_secret_fields_are_the_typed_classes_secret_outputs():
    # The typed Secret makes data and stringData secrets, as inputs and as outputs: so does
    # KubernetesObject, for every kind whose typed class does.
    import inspect
    import re

    import pulumi_kubernetes as k8s

    for cls in (k8s.core.v1.Secret, k8s.core.v1.ConfigMap, k8s.apps.v1.Deployment, k8s.core.v1.Service):
        source = inspect.getsource(cls._internal_init)
        declared = re.search(r"additional_secret_outputs=\[([^\]]*)\]", source)
        expected = tuple(re.findall(r'"(\w+)"', declared.group(1))) if declared else ()
        assert SECRET_FIELDS.get(cls.__name__, ()) == expected, cls
