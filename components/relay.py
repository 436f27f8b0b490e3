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
        from components.kube import KubernetesObject

        child = pulumi.ResourceOptions(parent=self)
        documents = relay_objects.objects(args.stack, args.config, args.relay_token, args.forge_token)
        for document in documents:
            namespace = args.namespace or document["metadata"]["namespace"]
            KubernetesObject(f"{name}-{document['kind'].lower()}", document, namespace, child)
        self.register_outputs({})
