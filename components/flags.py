"""FeatureFlags: the stack's flagd flag document, where services can read it.

Kubernetes: a ConfigMap holding ``flags.json``. Pods mount it as a *directory*
(never with ``subPath``): the kubelet then swaps the file in place when the
ConfigMap changes, and flagd's file watch picks the new flags up without a pod
restart. A subPath mount is a copy taken at pod start and never updates.

Docker: a flagd container serving the same file over gRPC (port 8013) and
flagd's sync API (8015), with the file bind-mounted as a directory from the
stack's build folder, which ``pulumi up`` (and ``rollout render``) write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from rollout.build.kubernetes_objects import flags_config_map
from rollout.model import conventions, versions

TYPE = "rollout:flags:FeatureFlags"


@dataclass(frozen=True)
class KubernetesFlagsArgs:
    """Where the flag ConfigMap goes."""

    #: The flagd document, serialised (rollout.build.flags.dumps).
    document: str
    namespace: pulumi.Input[str]
    labels: dict[str, str]


@dataclass(frozen=True)
class DockerFlagsArgs:
    """Where the flag file is written and which network flagd joins."""

    document: str
    #: Host folder holding flags.json, bind-mounted into flagd as a directory.
    host_dir: Path
    network_name: pulumi.Input[str]
    #: Write the file during the run; off in previews, which change nothing.
    write_file: bool


class KubernetesFeatureFlags(pulumi.ComponentResource):
    """The flag document as a ConfigMap for a flagd sidecar or the OpenFeature operator."""

    config_map_name: pulumi.Output[str]

    def __init__(self, name: str, args: KubernetesFlagsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        from components.kube import KubernetesObject

        document = flags_config_map(args.namespace, args.document, args.labels)
        config_map = KubernetesObject(f"{name}-configmap", document, opts=pulumi.ResourceOptions(parent=self))
        self.config_map_name = config_map.metadata["name"]
        self.register_outputs({"configMapName": self.config_map_name})


class DockerFeatureFlags(pulumi.ComponentResource):
    """The flag document served by a flagd container from a bind-mounted folder."""

    container_name: pulumi.Output[str]

    def __init__(self, name: str, args: DockerFlagsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        import pulumi_docker as docker  # a Kubernetes stack never loads the Docker provider

        if args.write_file:
            args.host_dir.mkdir(parents=True, exist_ok=True)
            (args.host_dir / conventions.FLAGS_FILE_NAME).write_text(args.document, encoding="utf-8")
        image = docker.RemoteImage(
            f"{name}-image",
            name=versions.IMAGES["flagd"],
            keep_locally=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        container = docker.Container(
            f"{name}-flagd",
            name=name,
            image=image.image_id,
            command=[
                "start",
                "--uri",
                f"file:{conventions.FLAGS_MOUNT_DIR}/{conventions.FLAGS_FILE_NAME}",
            ],
            mounts=[
                docker.ContainerMountArgs(
                    type="bind",
                    source=str(args.host_dir.resolve()),
                    target=conventions.FLAGS_MOUNT_DIR,
                    read_only=True,
                )
            ],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.network_name, aliases=["flagd"])],
            restart="unless-stopped",
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The document as deployed, where the policy pack can read it (policies
        # see resource inputs only, and the file itself is not a resource).
        pulumi.Stash(f"{name}-document", input=args.document, opts=pulumi.ResourceOptions(parent=self))
        self.container_name = container.name
        self.register_outputs({"containerName": self.container_name})
