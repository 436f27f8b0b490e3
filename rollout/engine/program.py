"""The Pulumi program: load config → build → declare → export.

``__main__.py`` calls :func:`run`; the offline harness calls it under mocks.
The whole config is validated before the first resource is declared, so a bad
stack file stops ``pulumi up`` with one message and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from rollout.model import conventions

from rollout.build import yamlout
from rollout.build.alertmanager import alertmanager_config, plaintext
from rollout.build.artifacts import build_artifacts
from rollout.load.charts import check_local_charts
from rollout.model.config import StackConfig
from rollout.model.errors import ConfigError
from rollout.load.secrets import read_pulumi_config
from rollout.load.stack import (
    check_alert_names,
    check_upstream,
    display_path,
    project_root,
    stack_file,
    validate,
)


def load_program_config(stack: str, root: Path | None = None) -> StackConfig:
    """The stack config as the engine hands it over, validated like the CLI does."""
    path = stack_file(stack, root)
    config = validate(read_pulumi_config(), display_path(path, root))
    check_alert_names(config, display_path(path, root))
    check_local_charts(config, display_path(path, root), root or project_root())
    if config.promotes_from and path.exists():
        check_upstream(config, path, root)
    return config


def run(root: Path | None = None) -> None:
    stack = pulumi.get_stack()
    try:
        config = load_program_config(stack, root)
    except ConfigError as err:
        # RunError ends the program cleanly with just this message: no
        # traceback, and nothing declared.
        raise pulumi.RunError(str(err)) from None
    declare(config, stack, root or project_root())


def declare(config: StackConfig, stack: str, root: Path) -> None:
    """Declare every resource of the stack from a validated config."""
    from rollout.model.state import rollout_state

    artifacts = build_artifacts(config, stack)
    if config.target == "kubernetes":
        _declare_kubernetes(config, stack, root, artifacts)
    else:
        _declare_docker(config, stack, root, artifacts)
    state = rollout_state(config, stack)
    # The policy pack sees only resource inputs: the rollout state is one.
    pulumi.Stash(conventions.STATE_STASH, input=state)
    pulumi.export("stack", stack)
    pulumi.export("target", config.target)
    pulumi.export("flagsDocument", artifacts.flags_json)
    # What is deployed, for CI's gate evidence (rollout evidence --deployed-state).
    pulumi.export("rolloutState", state)


def _deployed_alertmanager_config(config: StackConfig) -> pulumi.Output:
    """The Alertmanager config with the decrypted credentials, secret from the start."""
    return pulumi.Output.secret(alertmanager_config(config, reveal=plaintext))


def _deployed_routing_secrets(config: StackConfig) -> pulumi.Output:
    """The credentials the AlertmanagerConfig references (an existing operator), secret from the start."""
    from rollout.build.alertmanager_config import secret_values

    return pulumi.Output.secret(secret_values(config, reveal=plaintext))


def _grafana(config: StackConfig, password: pulumi.Output | None, prometheus_url: str, depends_on: list):
    """The API's provisioning of the Grafana at monitoring.grafana.url: with the stack's
    credentials (secrets.grafanaAuth), else the admin password of the Grafana the stack
    installs. ``password`` is None when the stack installs none, and then the stack's
    credentials are required (StackConfig refuses the stack without them)."""
    from components.grafana import GrafanaProvisioning, GrafanaProvisioningArgs

    settings = config.monitoring.grafana
    if not settings.url:
        return None
    auth = config.secrets.grafana_auth
    if password is not None and (auth is None or not auth.value):
        credentials = password.apply(lambda p: f"admin:{p}")
    else:  # the stack's own credentials: StackConfig requires them for a Grafana it does not install
        credentials = auth.value
    return GrafanaProvisioning(
        "grafana",
        GrafanaProvisioningArgs(
            url=settings.url,
            auth=credentials,
            folder=settings.folder,
            prometheus_url=prometheus_url,
            grafana=depends_on,
        ),
    )


def _dashboards(config: StackConfig, artifacts, grafana, grafana_up: list, namespace=None, labels=None, opts=None) -> None:
    """ConfigMaps for the chart's sidecar (Kubernetes) and, with a Grafana URL, the API's dashboards."""
    from components.dashboards import Dashboards, DashboardsArgs
    from dashboards.build import stage_annotations

    prefix = "grafana/dashboards/"
    Dashboards(
        "dashboards",
        DashboardsArgs(
            dashboards={
                path.removeprefix(prefix).removesuffix(".json"): text
                for path, text in artifacts.files.items()
                if path.startswith(prefix)
            },
            folder=config.monitoring.grafana.folder,
            namespace=namespace,
            labels=labels or {},
            grafana_provider=grafana.provider if grafana is not None else None,
            grafana_folder_uid=grafana.folder_uid if grafana is not None else None,
            grafana=grafana_up,
            stage_annotations=stage_annotations(config),
            stack=pulumi.get_stack(),
        ),
        opts=opts,
    )


SKIP_AWAIT = "pulumi.com/skipAwait"


def _skip_await(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """``kubernetes.skipAwait``: annotate every Kubernetes object so the provider does not wait."""
    if not args.type_.startswith("kubernetes:") or args.type_.startswith("kubernetes:helm."):
        return None

    def annotate(metadata):
        metadata = dict(metadata or {})
        annotations = metadata.get("annotations")
        if isinstance(annotations, pulumi.Output):
            metadata["annotations"] = annotations.apply(lambda a: {**(a or {}), SKIP_AWAIT: "true"})
        else:
            metadata["annotations"] = {**(annotations or {}), SKIP_AWAIT: "true"}
        return metadata

    props = dict(args.props)
    metadata = props.get("metadata")
    props["metadata"] = metadata.apply(annotate) if isinstance(metadata, pulumi.Output) else annotate(metadata)
    return pulumi.ResourceTransformResult(props=props, opts=args.opts)


def _declare_kubernetes(config: StackConfig, stack: str, root: Path, artifacts) -> None:
    import pulumi_kubernetes as k8s  # a Docker stack never loads the Kubernetes provider

    from alerts.catalogue import rule_files
    from components.flags import KubernetesFeatureFlags, KubernetesFlagsArgs
    from components.kube import KubernetesObject
    from components.monitoring import KubernetesMonitoring, KubernetesMonitoringArgs
    from components.service import CanaryServiceArgs, KubernetesCanaryService
    from rollout.build import kubernetes_objects

    settings = config.kubernetes
    assert settings is not None  # guaranteed by the model for target kubernetes
    provider_args: dict = {}
    if settings.render_yaml_to_directory:
        # The dev stack writes manifests to a folder instead of a cluster.
        provider_args["render_yaml_to_directory"] = str(root / settings.render_yaml_to_directory)
    if settings.context:
        provider_args["context"] = settings.context
    provider = k8s.Provider(f"{stack}-kubernetes", namespace=settings.namespace, **provider_args)
    opts = pulumi.ResourceOptions(provider=provider, transforms=[_skip_await] if settings.skip_await else None)
    labels = kubernetes_objects.labels()
    namespace = KubernetesObject("namespace", kubernetes_objects.namespace(config), opts=opts)
    namespace_name = namespace.metadata["name"]
    KubernetesFeatureFlags(
        conventions.FLAGS_CONFIGMAP,
        KubernetesFlagsArgs(document=artifacts.flags_json, namespace=namespace_name, labels=labels),
        opts=opts,
    )
    monitoring = KubernetesMonitoring(
        "monitoring",
        KubernetesMonitoringArgs(
            config=config,
            alertmanager_config=_deployed_alertmanager_config(config),
            rule_files=rule_files(config),
            namespace=namespace_name,
            root=root,
            routing_secret_values=None if config.monitoring.install else _deployed_routing_secrets(config),
            stack=stack,
        ),
        opts=opts,
    )
    grafana = _grafana(
        config,
        monitoring.grafana_admin_password,
        f"http://prometheus-operated.{settings.namespace}.svc:9090",
        [monitoring],
    )
    _dashboards(config, artifacts, grafana, [monitoring], namespace=namespace_name, labels=labels, opts=opts)
    if config.rollback.relay is not None:
        from components.relay import KubernetesRelay, RelayArgs

        KubernetesRelay(
            conventions.RELAY_NAME,
            RelayArgs(
                config=config,
                stack=stack,
                relay_token=pulumi.Output.secret(plaintext(config.secrets.relay_token, False)),
                forge_token=pulumi.Output.secret(plaintext(config.secrets.relay_forge_token, False)),
                namespace=namespace_name,
            ),
            opts=opts,
        )
    for service in config.services:
        KubernetesCanaryService(
            service.name,
            CanaryServiceArgs(config=config, service=service, namespace=namespace_name),
            opts=opts,
        )


def _declare_docker(config: StackConfig, stack: str, root: Path, artifacts) -> None:
    import pulumi_docker as docker  # a Kubernetes stack never loads the Docker provider

    from components.flags import DockerFeatureFlags, DockerFlagsArgs
    from components.monitoring import DockerMonitoring, DockerMonitoringArgs
    from components.service import CanaryServiceArgs, DockerCanaryService

    settings = config.docker
    assert settings is not None  # guaranteed by the model for target docker
    provider = docker.Provider(f"{stack}-docker", host=settings.host) if settings.host else None
    opts = pulumi.ResourceOptions(provider=provider)
    network = docker.Network("network", name=settings.network, opts=opts)
    DockerFeatureFlags(
        conventions.FLAGS_CONFIGMAP,
        DockerFlagsArgs(
            document=artifacts.flags_json,
            host_dir=root / "build" / stack / "flags",
            network_name=network.name,
            write_file=not pulumi.runtime.is_dry_run(),
        ),
        opts=opts,
    )
    monitoring = DockerMonitoring(
        "monitoring",
        DockerMonitoringArgs(
            config=config,
            network_name=network.name,
            files=artifacts.files,
            alertmanager_yml=_deployed_alertmanager_config(config).apply(lambda doc: yamlout.dump(doc, stack)),
            blackbox_yml=artifacts.files["blackbox/blackbox.yml"],
        ),
        opts=opts,
    )
    host, port = conventions.DOCKER_HOSTS["prometheus"]
    grafana = _grafana(config, monitoring.grafana_admin_password, f"http://{host}:{port}", [monitoring.grafana_container])
    _dashboards(config, artifacts, grafana, [monitoring.grafana_container])
    for service in config.services:
        DockerCanaryService(
            service.name, CanaryServiceArgs(config=config, service=service, network_name=network.name), opts=opts
        )
