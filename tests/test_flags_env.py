"""`rollout flags --format env` prints what flagd evaluates for the same stack and context."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

from conftest import ROOT, STACKS


def _cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "rollout.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("key, track", [("ci", "stable"), ("user-7", "canary"), ("user-12345", "stable")])
def test_the_env_lines_match_flagds_own_evaluation_of_the_rendered_document(tmp_path, stack, key, track):
    _cli("render", "--stack", stack, "--out", str(tmp_path))
    provider = FlagdProvider(resolver_type=ResolverType.IN_PROCESS, offline_flag_source_path=str(Path(tmp_path, "flags", "flags.json")))
    api.set_provider_and_wait(provider, domain=f"env-{stack}")
    try:
        client = api.get_client(domain=f"env-{stack}")
        lines = _cli("flags", "--stack", stack, "--format", "env", "--targeting-key", key, "--track", track).splitlines()
        printed = dict(line.split("=", 1) for line in lines)
        assert all(name.startswith("FLAG_") and name == name.upper() for name in printed)
        keys = [name.removeprefix("FLAG_").lower() for name in printed]
        expected = {
            f"FLAG_{k.upper()}": "true" if client.get_boolean_value(k, False, EvaluationContext(key, {"track": track})) else "false"
            for k in keys
        }
        assert printed == expected
        assert len(printed) == 15
    finally:
        provider.shutdown()
