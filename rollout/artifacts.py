"""Everything a stack renders, built once by pure functions from the config.

The program deploys these exact bytes, ``rollout render`` writes them to disk,
and the tests check them with the real tools. Paths follow the layout in
docs/configuration.md: ``flags/``, ``prometheus/``, ``alertmanager/``,
``grafana/``, ``kubernetes/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rollout import flags, yamlout
from rollout.alertmanager import alertmanager_config
from rollout.config import StackConfig
from rollout.helm_values import blackbox_values
from rollout.prometheus import prometheus_config


@dataclass(frozen=True)
class Artifacts:
    stack: str
    #: Rendered files by path relative to the output folder.
    files: dict[str, str] = field(default_factory=dict)

    @property
    def flags_json(self) -> str:
        """The flagd flag document (flags/flags.json)."""
        return self.files["flags/flags.json"]


def build_artifacts(config: StackConfig, stack: str) -> Artifacts:
    files: dict[str, str] = {}
    from alerts.catalogue import rule_files

    files["flags/flags.json"] = flags.dumps(flags.flag_document(config, stack))
    files["prometheus/prometheus.yml"] = yamlout.dump(prometheus_config(config, stack), stack)
    for name, document in rule_files(config).items():
        files[f"prometheus/rules/{name}.yaml"] = yamlout.dump(document, stack)
    files["blackbox/blackbox.yml"] = yamlout.dump(blackbox_values(config)["config"], stack)
    # Placeholders stand where the deployed file holds secrets.
    files["alertmanager/alertmanager.yml"] = yamlout.dump(alertmanager_config(config), stack)
    if config.target == "kubernetes":
        from rollout.traffic import manifests

        for service in config.services:
            for name, manifest in manifests(config, service).items():
                files[f"kubernetes/{name}"] = yamlout.dump(manifest, stack)
    from dashboards.build import dashboards, dumps

    for uid, document in dashboards(config, stack).items():
        files[f"grafana/dashboards/{uid}.json"] = dumps(document)
    return Artifacts(stack=stack, files=dict(sorted(files.items())))
