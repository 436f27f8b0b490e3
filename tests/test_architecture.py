"""docs/architecture.md agrees with the tree: every command, gate, policy and layer
is where the page says it is."""

from __future__ import annotations

import argparse
import importlib
import re
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT

PAGE = (ROOT / "docs" / "architecture.md").read_text()


def _table(heading: str) -> dict[str, str]:
    """The first column (code span) -> the second column (code span) of the table under ``heading``."""
    section = PAGE.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = re.findall(r"`([^`]+)`", line)
        if line.startswith("| `") and len(cells) >= 2:
            rows[cells[0]] = cells[1]
    return rows


def _module_file(module: str) -> str:
    # A command's module is imported when the command runs; here, to find its file.
    path = Path(importlib.import_module(module).__file__).resolve()
    return path.relative_to(ROOT).as_posix()


def _commands() -> dict[str, argparse.ArgumentParser]:
    from rollout.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_is_in_the_table_at_the_module_of_its_handler():
    table = _table("Where each command lives")
    commands = _commands()
    assert sorted(table) == sorted(f"rollout {name}" for name in commands)
    for name, sub in commands.items():
        handler = sub.get_default("handler")
        assert handler is not None, name
        assert table[f"rollout {name}"] == _module_file(handler.__module__), name


def test_every_gate_and_policy_is_in_the_table_at_a_module_that_implements_it():
    from policies.rules import POLICIES
    from rollout.gates import judge

    table = _table("Where each gate and policy lives")
    assert sorted(table) == sorted(policy.name for policy in POLICIES)
    constants = {value: key for key, value in vars(judge).items() if isinstance(value, str) and key.isupper()}
    for name, module in table.items():
        text = (ROOT / module).read_text()
        spelled = [f'"{name}"'] + ([constants[name]] if name in constants else [])
        assert any(s in text for s in spelled), f"{module} does not implement {name}"


def test_the_layers_table_is_the_import_contract_in_order():
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    rows = []
    for line in PAGE.split("## Layers\n", 1)[1].split("\n## ", 1)[0].splitlines():
        if re.match(r"\| \d+ \|", line):
            packages = re.split(r"(?<!\\)\|", line)[2]
            rows.append(" | ".join(re.findall(r"`([^`]+)`", packages)))
    assert rows == [" | ".join(p.strip() for p in layer.split("|")) for layer in contract["layers"]]


@pytest.mark.parametrize("package", sorted(p.name for p in (ROOT / "rollout").iterdir() if (p / "__init__.py").is_file()))
def test_every_layer_package_is_on_the_page_and_says_what_it_holds(package):
    assert f"rollout/{package}/" in PAGE
    doc = (ROOT / "rollout" / package / "__init__.py").read_text()
    assert doc.startswith('"""') and len(doc.split('"""')[1].strip()) > 80
