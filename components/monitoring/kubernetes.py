"""The monitoring stack on Kubernetes: kube-prometheus-stack, the blackbox exporter
and the Pushgateway as Helm charts, our rules and monitors as custom resources.

Helm resource: ``helm.v4.Chart``. ``helm.v3.Release`` runs Helm's hooks but
cannot render to a folder (pulumi-kubernetes#1716), so the dev stack, whose
provider writes manifests with renderYamlToDirectory, could not use it. v4
templates the chart client-side, which works with renderYamlToDirectory, and
applies hook resources as plain resources, so the values turn off everything
that needs a hook (rollout/build/helm_values.py says which and why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from components.kube import KubernetesObject
from components.password import GeneratedPassword

from rollout.build import kubernetes_objects as objects
from rollout.load import charts
from rollout.model import versions
from rollout.model.config import StackConfig

PACKAGE = "rollout:monitoring"
#: What the chart renders that holds Prometheus' data: deleting the Prometheus
#: resource makes the operator delete its StatefulSet.
DATA_TYPES = ("kubernetes:monitoring.coreos.com/v1:Prometheus",)


def keep_prometheus_data(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """Protect and retain the chart's Prometheus (production, ``storage.protect``).

    Options set on a ``helm.v4.Chart`` are not passed on to the objects it
    renders: retainOnDelete is not propagated (pulumi-kubernetes#3065, closed as
    won't fix), so the chart's own options alone would not keep the data. A
    transform reaches the rendered children. The volumes themselves are made by
    the StatefulSet, not by Pulumi, and are kept by the
    persistentVolumeClaimRetentionPolicy in the values.
    """
    if args.type_ not in DATA_TYPES:
        return None
    keep = pulumi.ResourceOptions(protect=True, retain_on_delete=True)
    return pulumi.ResourceTransformResult(props=args.props, opts=pulumi.ResourceOptions.merge(args.opts, keep))


class Deployable(pulumi.ComponentResource):
    """One deployable of the monitoring stack, grouping its resources."""

    def __init__(self, kind: str, name: str, opts: pulumi.ResourceOptions) -> None:
        super().__init__(f"{PACKAGE}:{kind}", name, None, opts)



def chart_args(config: StackConfig, key: str, root: Path) -> dict[str, Any]:
    """The chart-locating arguments of ``helm.v4.ChartArgs`` for one chart."""
    chart, version = versions.CHARTS[key]
    path = charts.local_path(config, key, root)
    if path is not None:
        return {"chart": str(path.resolve())}
    import pulumi_kubernetes as k8s  # as in the component: a Docker stack never loads the provider

    return {
        "chart": chart,
        "version": version,
        "repository_opts": k8s.helm.v4.RepositoryOptsArgs(repo=versions.CHART_REPOSITORY),
    }


@dataclass(frozen=True)
class KubernetesMonitoringArgs:
    config: StackConfig
    #: The Alertmanager config as deployed (a secret Output holding the decrypted credentials).
    alertmanager_config: pulumi.Input[dict]
    #: Rules files by name (alerts.catalogue.rule_files).
    rule_files: dict[str, dict]
    namespace: pulumi.Input[str]
    #: The project folder local chart paths are relative to.
    root: Path = Path(".")
    #: With an existing operator: the routing's credentials (rollout.build.alertmanager_config.secret_values)
    #: as a secret Output, for the Secret its AlertmanagerConfig references.
    routing_secret_values: pulumi.Input[dict] | None = None
    #: The stack's name (the rendered blackbox.yml's header says which stack file it comes from).
    stack: str = ""


class KubernetesMonitoring(pulumi.ComponentResource):
    """MonitoringStack on Kubernetes."""

    #: The installed Grafana's admin password; None when the stack brings its own monitoring.
    grafana_admin_password: pulumi.Output[str] | None

    def __init__(self, name: str, args: KubernetesMonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PACKAGE}:MonitoringStack", name, None, opts)
        import pulumi_kubernetes as k8s  # a Docker stack never loads the Kubernetes provider

        config = args.config
        monitoring = config.monitoring
        child = pulumi.ResourceOptions(parent=self)
        chart_deps: list[pulumi.Resource] = []

        specs = objects.charts(config, args.alertmanager_config)
        self.grafana_admin_password = None
        if specs:
            # The admin password of the Grafana the charts install. An existing install's
            # Grafana has its own (the stack names its credentials, secrets.grafanaAuth): a
            # stack that brings its own monitoring draws none, and runs no dynamic provider.
            password = GeneratedPassword(f"{name}-grafana-admin-password", length=32, opts=child)
            self.grafana_admin_password = password.result
            stack = Deployable("KubePrometheusStack", f"{name}-kube-prometheus-stack", child)
            admin_doc = objects.grafana_admin_secret(config, password.result)
            # Declared without its type (Opaque, the API's default), as stacks have always had it.
            admin = KubernetesObject(
                f"{name}-grafana-admin",
                {key: value for key, value in admin_doc.items() if key != "type"},
                args.namespace,
                pulumi.ResourceOptions(parent=stack),
            )
            main, *others = specs
            chart = k8s.helm.v4.Chart(
                f"{name}-{main.chart}",
                k8s.helm.v4.ChartArgs(
                    **chart_args(config, main.key, args.root),
                    name=main.release,
                    namespace=args.namespace,
                    values=main.values,
                ),
                opts=pulumi.ResourceOptions(
                    parent=stack,
                    depends_on=[admin],
                    # Production keeps Prometheus and its volume; the transform
                    # carries that to the rendered Prometheus itself.
                    protect=monitoring.storage.protect,
                    retain_on_delete=monitoring.storage.protect,
                    transforms=[keep_prometheus_data] if monitoring.storage.protect else None,
                ),
            )
            chart_deps.append(chart)
            for spec in others:
                group = Deployable(spec.kind, f"{name}-{spec.kind.lower()}", child)
                chart_deps.append(
                    k8s.helm.v4.Chart(
                        f"{name}-{spec.chart}",
                        k8s.helm.v4.ChartArgs(
                            **chart_args(config, spec.key, args.root),
                            name=spec.release,
                            namespace=args.namespace,
                            values=spec.values,
                        ),
                        opts=pulumi.ResourceOptions(parent=group, depends_on=[chart]),
                    )
                )

        # Our rules and monitors need the operator's CRDs: after the chart when we install it.
        custom = Deployable("MonitoringResources", f"{name}-resources", child)
        if not monitoring.install:
            chart_deps += self._existing_operator(name, args, custom)
        cr_opts = pulumi.ResourceOptions(parent=custom, depends_on=chart_deps)
        for document in objects.monitoring_documents(config, args.rule_files):
            resource = f"{name}-{document['kind'].lower()}-{document['metadata']['name']}"
            KubernetesObject(resource, document, args.namespace, cr_opts)
        password_output = self.grafana_admin_password
        self.register_outputs({"grafanaAdminPassword": password_output} if password_output is not None else {})

    def _existing_operator(self, name: str, args: KubernetesMonitoringArgs, custom: pulumi.Resource) -> list[pulumi.Resource]:
        """What an existing operator does not give the stack: the Secret its AlertmanagerConfig
        references, and (without an address of one) a blackbox exporter for its Probes."""
        from rollout.build import alertmanager_config as routing, blackbox_objects

        config = args.config
        child = pulumi.ResourceOptions(parent=custom)
        document = routing.credentials_secret(config, args.routing_secret_values)
        secret = KubernetesObject(f"{name}-alertmanager-credentials", document, args.namespace, child)
        documents = blackbox_objects.objects(config, args.stack)
        exporter = Deployable("BlackboxExporter", f"{name}-blackbox-exporter", pulumi.ResourceOptions(parent=self)) if documents else None
        for document in documents:
            resource = f"{name}-blackbox-{document['kind'].lower()}"
            KubernetesObject(resource, document, args.namespace, pulumi.ResourceOptions(parent=exporter))
        return [secret]
