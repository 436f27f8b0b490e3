"""The local stack's monitoring containers under Pulumi's mocks: which host ports
they publish, and what node-exporter reads.

tests/test_monitoring.py covers the images, the uploads and Grafana's provisioning.
"""

from __future__ import annotations

import pytest

from conftest import FIXTURE, edit_stack
from rollout.model import conventions as c
from rollout.engine.harness import run_program
from rollout.load.stack import load_stack

CONTAINER = "docker:index/container:Container"
#: Container -> the rollout:docker.ports key that publishes it.
PUBLISHED = {"prometheus": "prometheus", "alertmanager": "alertmanager", "grafana": "grafana", "pushgateway": "pushgateway"}
#: Reached only by Prometheus over the Docker network.
UNPUBLISHED = ("node-exporter", "blackbox-exporter")


def _containers(run) -> dict[str, dict]:
    prefix = "monitoring-"
    return {r.name.removeprefix(prefix): r.inputs for r in run.of_type(CONTAINER) if r.name.startswith(prefix)}


@pytest.mark.parametrize("moved", [False, True], ids=["the stack file's ports", "ports moved in the stack file"])
def test_each_ui_is_published_on_loopback_at_the_port_the_stack_file_names(project, moved):
    if moved:
        moved_to = {key: 19000 + i for i, key in enumerate(PUBLISHED.values())}
        edit_stack(project, "local", lambda config: config["rollout:docker"]["ports"].update(moved_to))
    configured = load_stack("local", project).docker.ports
    containers = _containers(run_program("local", project))
    for component, key in PUBLISHED.items():
        expected = {"ip": "127.0.0.1", "internal": c.DOCKER_HOSTS[component][1], "external": getattr(configured, key)}
        assert containers[component]["ports"] == [expected], component
        if moved:
            assert expected["external"] == moved_to[key], component
    for component in UNPUBLISHED:
        assert not containers[component].get("ports"), component


def test_node_exporter_reads_the_hosts_root_read_only():
    node = _containers(run_program("local", FIXTURE))["node-exporter"]
    (volume,) = node["volumes"]
    assert volume == {"hostPath": "/", "containerPath": "/host", "readOnly": True}
    assert f"--path.rootfs={volume['containerPath']}" in node["command"]
