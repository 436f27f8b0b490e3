"""The project files that Pulumi and pip read are what they expect."""

from __future__ import annotations

import json
import tomllib

import jsonschema
import yaml

from conftest import ROOT, STACKS
from upstream import reference


def test_pulumi_yaml_validates_against_pulumis_project_schema():
    schema = reference("pulumi", "project.json")
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(project)


def test_pulumi_yaml_uses_the_pip_toolchain_in_dot_venv_and_the_stacks_folder():
    # runtime.options is free-form in the schema, so it is checked here.
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "rollout"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["toolchain"] == "pip"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert project["stackConfigDir"] == "stacks"


def test_every_stack_has_its_file_in_the_stack_config_dir():
    for stack in STACKS:
        assert (ROOT / "stacks" / f"Pulumi.{stack}.yaml").is_file(), stack


def test_pyproject_declares_the_rollout_command_ranged_dependencies_and_the_engines_pins():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["rollout"] == "rollout.cli:main"
    # The engine's SDKs are pinned exactly, to the versions of the Go-built engine
    # and provider (tools/versions.env); every other dependency has a range.
    from kube_cluster import pins as tool_pins

    pins = tool_pins()
    exact = {"pulumi": pins["PULUMI_VERSION"], "pulumi-kubernetes": pins["PULUMI_KUBERNETES_VERSION"]}
    for requirement in pyproject["project"]["dependencies"]:
        name = requirement.split("=", 1)[0].split(">", 1)[0].split("<", 1)[0]
        if name in exact:
            assert requirement == f"{name}=={exact[name]}", f"{requirement}: pin it to tools/versions.env's {exact[name]}"
        else:
            assert "<" in requirement and ">=" in requirement, f"{requirement} needs a compatible range"


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make up" in readme
    assert "make test" in ci


def test_the_test_durations_name_test_modules_that_exist_and_make_test_keeps_their_order():
    # tests/conftest.py orders the modules by these times; make test keeps the order.
    durations = json.loads((ROOT / "tests" / "durations.json").read_text())
    assert durations and all(isinstance(seconds, (int, float)) and seconds >= 0 for seconds in durations.values())
    assert [name for name in durations if not (ROOT / name).is_file() or not name.startswith("tests/test_")] == []
    makefile = (ROOT / "Makefile").read_text()
    assert "--dist loadfile --no-loadscope-reorder" in makefile
