"""Relay: ``rollout relay`` beside Alertmanager on a Kubernetes stack (rollout/build/relay_objects.py builds every object)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from rollout.build import relay_objects
from rollout.model.config import StackConfig

TYPE = "rollout:rollback:Relay"


@dataclass(frozen=True)
class RelayArgs:
    config: StackConfig
    stack: str
    #: Pulumi secret Outputs of secrets.relayToken and secrets.relayForgeToken.
    relay_token: pulumi.Input[str]
    forge_token: pulumi.Input[str]
    namespace: pulumi.Input[str] | None = None


class KubernetesRelay(pulumi.ComponentResource):
    def __init__(self, name: str, args: RelayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        import pulumi_kubernetes as k8s  # a Docker stack never loads the Kubernetes provider

        child = pulumi.ResourceOptions(parent=self)
        documents = relay_objects.objects(args.stack, args.config, args.relay_token, args.forge_token)
        for document in documents:
            meta = k8s.meta.v1.ObjectMetaArgs(**{**document["metadata"], "namespace": args.namespace or document["metadata"]["namespace"]})
            kind = document["kind"]
            resource = f"{name}-{kind.lower()}"
            if kind == "Secret":
                k8s.core.v1.Secret(resource, metadata=meta, type=document["type"],
                                   string_data=pulumi.Output.secret(document["stringData"]), opts=child)
            elif kind == "Deployment":
                k8s.apps.v1.Deployment(resource, metadata=meta, spec=document["spec"], opts=child)
            elif kind == "Service":
                k8s.core.v1.Service(resource, metadata=meta, spec=document["spec"], opts=child)
            elif kind == "PodDisruptionBudget":
                k8s.policy.v1.PodDisruptionBudget(resource, metadata=meta, spec=document["spec"], opts=child)
            elif kind == "NetworkPolicy":
                k8s.networking.v1.NetworkPolicy(resource, metadata=meta, spec=document["spec"], opts=child)
            elif kind == "ServiceAccount":
                k8s.core.v1.ServiceAccount(resource, metadata=meta,
                                           automount_service_account_token=document["automountServiceAccountToken"], opts=child)
            elif kind == "Role":
                k8s.rbac.v1.Role(resource, metadata=meta, rules=document["rules"], opts=child)
            elif kind == "RoleBinding":
                k8s.rbac.v1.RoleBinding(resource, metadata=meta, role_ref=document["roleRef"], subjects=document["subjects"], opts=child)
            else:  # pragma: no cover - relay_objects builds only the kinds above
                raise AssertionError(f"no resource for kind {kind}")
        self.register_outputs({})
