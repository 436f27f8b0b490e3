"""Grafana provisioned through its API with the pulumiverse-grafana provider:
the stack's folder and the Prometheus datasource (uid conventions.GRAFANA_DATASOURCE_UID).

Used for the local Docker stack always, and for Kubernetes stacks that set
``rollout:monitoring.grafana.url``; every resource waits for Grafana itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from rollout.model import conventions as c


@dataclass(frozen=True)
class GrafanaProvisioningArgs:
    url: str
    #: "user:password" or a service-account token; a secret.
    auth: pulumi.Input[str]
    folder: str
    prometheus_url: str
    #: What must be up before Grafana's API answers (its container or chart).
    grafana: list[pulumi.Resource]


class GrafanaProvisioning(pulumi.ComponentResource):
    provider: pulumi.ProviderResource
    folder_uid: pulumi.Output[str]

    def __init__(self, name: str, args: GrafanaProvisioningArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("rollout:grafana:GrafanaProvisioning", name, None, opts)
        import pulumiverse_grafana as grafana  # only a stack that provisions Grafana through its API loads it

        self.provider = grafana.Provider(
            f"{name}-provider",
            url=args.url,
            auth=pulumi.Output.secret(args.auth),
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.grafana),
        )
        in_grafana = pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=args.grafana)
        folder = grafana.oss.Folder(f"{name}-folder", title=args.folder, opts=in_grafana)
        grafana.oss.DataSource(
            f"{name}-prometheus",
            name="Prometheus",
            type="prometheus",
            uid=c.GRAFANA_DATASOURCE_UID,
            url=args.prometheus_url,
            is_default=True,
            opts=in_grafana,
        )
        self.folder_uid = folder.uid
        self.register_outputs({"folderUid": self.folder_uid})
