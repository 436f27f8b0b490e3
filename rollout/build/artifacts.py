"""Everything a stack renders, built once by pure functions from the config.

The program deploys these exact bytes, ``rollout render`` writes them to disk,
and the tests check them with the real tools. Paths follow the layout in
docs/configuration.md: ``flags/``, ``prometheus/``, ``alertmanager/``,
``grafana/``, ``kubernetes/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.catalogue import rule_files
from dashboards.build import dashboards, dumps, stage_annotations
from rollout.build import kubernetes_objects as objects
from rollout.build import relay_objects
from rollout.build.traffic import manifests
from rollout.model import conventions, versions

from rollout.build import flags, yamlout
from rollout.build.alertmanager import alertmanager_config
from rollout.model.config import StackConfig
from rollout.build.helm_values import blackbox_values
from rollout.build.prometheus import prometheus_config


@dataclass(frozen=True)
class Artifacts:
    stack: str
    #: Rendered files by path relative to the output folder.
    files: dict[str, str] = field(default_factory=dict)

    @property
    def flags_json(self) -> str:
        """The flagd flag document (flags/flags.json)."""
        return self.files["flags/flags.json"]


#: Second header line of a file only one target reads.
DOCKER_ONLY = (
    "For the Docker target only. On Kubernetes the Prometheus operator builds this from the "
    "objects under kubernetes/; it is rendered for promtool and for review."
)
IN_HELM_VALUES = (
    "The Docker target mounts this file. On Kubernetes the same document is in "
    "kubernetes/helm/{chart}.values.yaml ({key})."
)


def build_artifacts(config: StackConfig, stack: str) -> Artifacts:
    files: dict[str, str] = {}
    kubernetes = config.target == "kubernetes"
    rules = rule_files(config)
    files["flags/flags.json"] = flags.dumps(flags.flag_document(config, stack))
    files["prometheus/prometheus.yml"] = yamlout.dump(
        prometheus_config(config, stack), stack, DOCKER_ONLY if kubernetes else None
    )
    for name, document in rules.items():
        files[f"prometheus/rules/{name}.yaml"] = yamlout.dump(document, stack)
    files["blackbox/blackbox.yml"] = yamlout.dump(
        blackbox_values(config)["config"], stack,
        IN_HELM_VALUES.format(chart="prometheus-blackbox-exporter", key="config") if kubernetes else None,
    )
    # Placeholders stand where the deployed file holds secrets.
    files["alertmanager/alertmanager.yml"] = yamlout.dump(
        alertmanager_config(config), stack,
        IN_HELM_VALUES.format(chart="kube-prometheus-stack", key="alertmanager.config") if kubernetes else None,
    )
    boards = {uid: dumps(document) for uid, document in dashboards(config, stack).items()}
    for uid, text in boards.items():
        files[f"grafana/dashboards/{uid}.json"] = text
    # The stage changes the program creates as annotations on the canary dashboard.
    files["grafana/stage-annotations.json"] = dumps(
        [{"time": a.time, "text": a.text, "tags": a.tags(stack)} for a in stage_annotations(config)]
    )
    if kubernetes:
        files.update(kubernetes_files(config, stack, rules, files["flags/flags.json"], boards))
    return Artifacts(stack=stack, files=dict(sorted(files.items())))


def kubernetes_files(config: StackConfig, stack: str, rules: dict, flags_json: str, boards: dict[str, str]) -> dict[str, str]:
    """Every object a Kubernetes stack declares (rollout.build.kubernetes_objects), one file each,
    and the values of each Helm chart; secrets as placeholders."""
    namespace = config.kubernetes.namespace
    files: dict[str, str] = {}
    documents = [objects.namespace(config)]
    if config.monitoring.install:
        password = conventions.SECRET_PLACEHOLDER.format(path="generated:grafana-admin-password")
        documents.append(objects.grafana_admin_secret(config, password))
    documents.append(objects.flags_config_map(namespace, flags_json))
    documents += [objects.dashboard_config_map(namespace, config.monitoring.grafana.folder, uid, text) for uid, text in boards.items()]
    documents += objects.monitoring_documents(config, rules)
    if not config.monitoring.install:
        from rollout.build import alertmanager_config as routing, blackbox_objects

        # Placeholders only: the program fills the Secret from the stack's Pulumi secrets.
        documents.append(routing.credentials_secret(config, routing.secret_values(config)))
        documents += blackbox_objects.objects(config, stack)
    if config.rollback.relay is not None:
        documents += relay_objects.objects(
            stack, config, config.secrets.relay_token.placeholder, config.secrets.relay_forge_token.placeholder
        )
    for document in documents:
        files[f"kubernetes/{objects.file_name(document)}"] = yamlout.dump(document, stack)
    for service in config.services:
        for name, manifest in manifests(config, service).items():
            files[f"kubernetes/{name}"] = yamlout.dump(manifest, stack)
    for spec in objects.charts(config, alertmanager_config(config)):
        note = (
            f"Helm values of chart {spec.chart} {spec.version} ({versions.CHART_REPOSITORY}), "
            f"release {spec.release} in namespace {namespace}."
        )
        files[f"kubernetes/helm/{spec.chart}.values.yaml"] = yamlout.dump(spec.values, stack, note)
    return files
