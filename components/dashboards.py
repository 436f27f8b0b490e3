"""The stack's Grafana dashboards, provisioned two ways from the same rendered JSON.

- Kubernetes: one ConfigMap per dashboard carrying the label the Grafana
  chart's sidecar watches (conventions.GRAFANA_DASHBOARD_LABEL) and the folder
  annotation (conventions.GRAFANA_FOLDER_ANNOTATION) that puts the stack's
  dashboards in their own folder.
- Grafana's API (pulumiverse-grafana ``Dashboard`` resources in the stack's
  folder) when a Grafana URL is configured, always for the local Docker stack.
  Those resources use the provider of components.grafana.GrafanaProvisioning
  and wait for Grafana itself (its container or chart) to be up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from dashboards.build import UID_ROLLOUT
from rollout.build.kubernetes_objects import dashboard_config_map



@dataclass(frozen=True)
class DashboardsArgs:
    #: Dashboard JSON text by uid (dashboards.build.dumps of each).
    dashboards: dict[str, str]
    #: Folder title: the stack's dashboards live together.
    folder: str
    #: Kubernetes namespace for the ConfigMaps; None on Docker (no ConfigMaps).
    namespace: pulumi.Input[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    #: The Grafana provider and folder uid (GrafanaProvisioning) when Grafana's API is managed.
    grafana_provider: pulumi.ProviderResource | None = None
    grafana_folder_uid: pulumi.Input[str] | None = None
    #: What must be up before Grafana's API answers (its container or chart).
    grafana: list[pulumi.Resource] = field(default_factory=list)
    #: The history's stage changes (dashboards.build.stage_annotations), created as
    #: annotations through Grafana's API, and the stack (their tag).
    stage_annotations: list = field(default_factory=list)
    stack: str = ""


class Dashboards(pulumi.ComponentResource):
    """The dashboards of one stack."""

    config_maps: list[pulumi.Resource]
    grafana_dashboards: list[pulumi.Resource]

    def __init__(self, name: str, args: DashboardsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("rollout:dashboards:Dashboards", name, None, opts)
        self.config_maps = []
        self.grafana_dashboards = []
        if args.namespace is not None:
            from components.kube import KubernetesObject

            for uid, text in sorted(args.dashboards.items()):
                document = dashboard_config_map(args.namespace, args.folder, uid, text, args.labels)
                config_map = KubernetesObject(f"{name}-{uid}", document, opts=pulumi.ResourceOptions(parent=self))
                self.config_maps.append(config_map)
        if args.grafana_provider is not None:
            import pulumiverse_grafana as grafana  # only a stack that provisions Grafana through its API loads it

            in_grafana = pulumi.ResourceOptions(parent=self, provider=args.grafana_provider, depends_on=args.grafana)
            for uid, text in sorted(args.dashboards.items()):
                self.grafana_dashboards.append(
                    grafana.oss.Dashboard(
                        f"{name}-grafana-{uid}",
                        config_json=text,
                        folder=args.grafana_folder_uid,
                        # The program owns these dashboards: a hand edit in the UI is replaced.
                        overwrite=True,
                        opts=in_grafana,
                    )
                )
            for index, annotation in enumerate(args.stage_annotations):
                grafana.oss.Annotation(
                    f"{name}-stage-{annotation.service}-{index}",
                    dashboard_uid=UID_ROLLOUT,
                    time=annotation.time,
                    text=annotation.text,
                    tags=annotation.tags(args.stack),
                    opts=pulumi.ResourceOptions(parent=self, provider=args.grafana_provider, depends_on=self.grafana_dashboards),
                )
        self.register_outputs({"uids": sorted(args.dashboards)})
