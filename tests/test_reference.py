"""docs/configuration.md documents every knob, because it is generated from the model."""

from __future__ import annotations

from pydantic import BaseModel

import rollout.model.config as cfg
from conftest import ROOT
from rollout.build.reference import description, render


def _models() -> list[type[BaseModel]]:
    """Every model of the config package, whichever area module defines it."""
    return [
        obj
        for obj in vars(cfg).values()
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__.startswith(cfg.__name__ + ".")
    ]


def test_the_package_exports_every_model_of_its_area_modules():
    import importlib
    import pkgutil

    exported = set(_models())
    for module in pkgutil.iter_modules(cfg.__path__):
        area = importlib.import_module(f"{cfg.__name__}.{module.name}")
        defined = {
            obj for obj in vars(area).values()
            if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == area.__name__
        }
        assert defined <= exported, f"export from rollout.model.config: {sorted(m.__name__ for m in defined - exported)}"
    assert cfg.StackConfig in exported and len(exported) > 30


def test_every_config_field_has_a_description():
    undocumented = [
        f"{model.__name__}.{name}" for model in _models() for name in model.model_fields if not description(model, name)
    ]
    assert not undocumented, "add a docstring under each field: " + ", ".join(undocumented)


def test_the_committed_reference_is_the_generated_one():
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render(), "regenerate: .venv/bin/python -m rollout.build.reference > docs/configuration.md"


def test_every_top_level_key_has_a_section():
    text = render()
    for name, field in cfg.StackConfig.model_fields.items():
        assert f"## `rollout:{field.alias or name}`" in text
