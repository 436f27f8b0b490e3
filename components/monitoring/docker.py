"""The monitoring stack on Docker (the ``local`` stack): one container per deployable.

Configs are the same rendered bytes as everywhere else, uploaded into the
containers; the Alertmanager config, which holds the decrypted credentials, is
uploaded as a Pulumi secret and never written to the host. Ports are published
on 127.0.0.1 only. Containers find each other by their network aliases
(conventions.DOCKER_HOSTS), which the rendered prometheus.yml names.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.password import GeneratedPassword

from rollout.model import conventions as c
from rollout.model import versions
from rollout.model.config import StackConfig
from rollout.model.durations import format_duration

PACKAGE = "rollout:monitoring"


@dataclass(frozen=True)
class DockerMonitoringArgs:
    config: StackConfig
    network_name: pulumi.Input[str]
    #: Rendered files by path (rollout.build.artifacts): prometheus/..., the rules.
    files: dict[str, str]
    #: alertmanager.yml as deployed: a secret Output.
    alertmanager_yml: pulumi.Input[str]
    blackbox_yml: str


class DockerMonitoring(pulumi.ComponentResource):
    """MonitoringStack on Docker."""

    grafana_admin_password: pulumi.Output[str]
    grafana_container: pulumi.Resource

    def __init__(self, name: str, args: DockerMonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PACKAGE}:MonitoringStack", name, None, opts)
        import pulumi_docker as docker  # a Kubernetes stack never loads the Docker provider

        config = args.config
        ports = config.docker.ports
        child = pulumi.ResourceOptions(parent=self)
        password = GeneratedPassword(f"{name}-grafana-admin-password", length=32, opts=child)
        self.grafana_admin_password = password.result

        def container(component: str, *, command: list[str], uploads: list, published: int | None, envs=None, volumes=None):
            host, port = c.DOCKER_HOSTS[component]
            group = pulumi.ComponentResource(f"{PACKAGE}:{_kind(component)}", f"{name}-{component}", None, child)
            image = docker.RemoteImage(
                f"{name}-{component}-image",
                name=versions.IMAGES[component],
                keep_locally=True,
                opts=pulumi.ResourceOptions(parent=group),
            )
            return docker.Container(
                f"{name}-{component}",
                name=f"{config.docker.network}-{component}",
                image=image.image_id,
                command=command or None,
                envs=envs,
                uploads=uploads,
                volumes=volumes,
                ports=[docker.ContainerPortArgs(internal=port, external=published, ip="127.0.0.1")] if published else None,
                networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.network_name, aliases=[host])],
                restart="unless-stopped",
                opts=pulumi.ResourceOptions(parent=group),
            )

        prometheus_uploads = [
            docker.ContainerUploadArgs(file=f"{c.DOCKER_PROMETHEUS_DIR}/{path.removeprefix('prometheus/')}", content=text)
            for path, text in sorted(args.files.items())
            if path.startswith("prometheus/")
        ]
        container(
            "prometheus",
            command=[
                f"--config.file={c.DOCKER_PROMETHEUS_DIR}/prometheus.yml",
                f"--storage.tsdb.retention.time={_duration(config.monitoring.retention)}",
                "--web.enable-lifecycle",
            ],
            uploads=prometheus_uploads,
            published=ports.prometheus,
        )
        container(
            "alertmanager",
            command=[f"--config.file={c.DOCKER_ALERTMANAGER_FILE}", "--cluster.listen-address="],
            uploads=[docker.ContainerUploadArgs(file=c.DOCKER_ALERTMANAGER_FILE, content=args.alertmanager_yml)],
            published=ports.alertmanager,
        )
        self.grafana_container = container(
            "grafana",
            command=[],
            uploads=[],
            published=ports.grafana,
            envs=[pulumi.Output.secret(password.result.apply(lambda p: f"GF_SECURITY_ADMIN_PASSWORD={p}"))],
        )
        container("pushgateway", command=[], uploads=[], published=ports.pushgateway)
        # Inside its container node-exporter would report the container's own
        # overlay filesystem, which the disk alert leaves out: it reads the
        # host's root, mounted read-only, as node-exporter's docs prescribe.
        container(
            "node-exporter",
            command=["--path.rootfs=/host"],
            uploads=[],
            published=None,
            volumes=[docker.ContainerVolumeArgs(host_path="/", container_path="/host", read_only=True)],
        )
        container(
            "blackbox-exporter",
            command=["--config.file=/etc/blackbox/blackbox.yml"],
            uploads=[docker.ContainerUploadArgs(file="/etc/blackbox/blackbox.yml", content=args.blackbox_yml)],
            published=None,
        )
        self.register_outputs({"grafanaAdminPassword": self.grafana_admin_password})


def _kind(component: str) -> str:
    return "".join(part.capitalize() for part in component.split("-"))


def _duration(value) -> str:
    return format_duration(value)
