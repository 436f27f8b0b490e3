"""The stack's flag set as ONE flagd flag document (https://flagd.dev/reference/flag-definitions/).

Every strategy is written as flagd targeting, so flagd (or any OpenFeature flagd
provider in in-process mode) decides each evaluation; our code never does:

- ``all_at_once``: the default variant, no targeting;
- ``percentage``: ``fractional`` on the targeting key. flagd hashes the flag key
  with the targeting key (murmur3), so one key always gets the same answer and
  different flags split independently;
- ``progressive``: an ``if`` chain on ``$flagd.timestamp`` (seconds since the
  epoch) from the latest step back to the first, so the flag moves on schedule
  with no redeploy;
- ``canary``: ``if`` the evaluation context says ``track: canary``, then the
  flag's percentage of those evaluations, else off; it follows the service's
  canary weight (from the same config value): once the canary takes 100 % of
  traffic, the flag's percentage applies to everyone.

A 0 % or 100 % step is written as the plain variant rather than a fractional
split, so it does not depend on a targeting key being present.
"""

from __future__ import annotations

import json
from typing import Any

from rollout.model import conventions
from rollout.model.config import (
    AllAtOnceFlag,
    CanaryFlag,
    PercentageFlag,
    ProgressiveFlag,
    StackConfig,
)

SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json"
ON, OFF = conventions.FLAG_ON, conventions.FLAG_OFF
BOOLEAN_VARIANTS = {ON: True, OFF: False}


def _share(percentage: int) -> Any:
    """The variant (or fractional split) that turns ``percentage`` % of keys on."""
    if percentage >= 100:
        return ON
    if percentage <= 0:
        return OFF
    return {"fractional": [[ON, percentage], [OFF, 100 - percentage]]}


def _timestamp_at_least(epoch_seconds: int) -> dict[str, Any]:
    return {">=": [{"var": "$flagd.timestamp"}, epoch_seconds]}


def flag_definition(flag: Any, weight: int = 0) -> dict[str, Any]:
    """One flag's flagd definition; boolean variants ``on``/``off`` throughout.

    ``weight`` is the canary traffic weight of a canary flag's service: the flag
    follows it (recorded in its metadata, and on for everyone at 100 %).
    """
    definition: dict[str, Any] = {"state": "ENABLED", "variants": dict(BOOLEAN_VARIANTS)}
    metadata: dict[str, Any] = {"strategy": flag.strategy}
    if flag.description:
        metadata["description"] = flag.description
    if isinstance(flag, AllAtOnceFlag):
        definition["defaultVariant"] = ON if flag.enabled else OFF
        if flag.reason:
            metadata["reason"] = flag.reason
    elif isinstance(flag, PercentageFlag):
        share = _share(flag.percentage)
        definition["defaultVariant"] = share if isinstance(share, str) else OFF
        if not isinstance(share, str):
            definition["targeting"] = share
        metadata["percentage"] = flag.percentage
    elif isinstance(flag, ProgressiveFlag):
        definition["defaultVariant"] = OFF
        chain: list[Any] = []
        for step in reversed(flag.steps):
            at = int((flag.start + step.after).timestamp())
            chain += [_timestamp_at_least(at), _share(step.percentage)]
        chain.append(OFF)  # before the first step
        definition["targeting"] = {"if": chain}
        metadata["start"] = int(flag.start.timestamp())
    elif isinstance(flag, CanaryFlag):
        metadata["service"] = flag.service
        metadata["percentage"] = flag.percentage
        metadata["weight"] = weight
        if weight >= 100:
            # The canary takes all traffic: what it runs is what everyone runs.
            definition["defaultVariant"] = _share(flag.percentage) if flag.percentage in (0, 100) else OFF
            if flag.percentage not in (0, 100):
                definition["targeting"] = _share(flag.percentage)
        else:
            definition["defaultVariant"] = OFF
            definition["targeting"] = {
                "if": [
                    {"==": [{"var": conventions.TRACK_LABEL}, conventions.CANARY]},
                    _share(flag.percentage),
                    OFF,
                ]
            }
    else:  # pragma: no cover - the config model admits no other strategy
        raise TypeError(f"unknown flag strategy {flag!r}")
    definition["metadata"] = metadata
    return definition


def flag_document(config: StackConfig, stack: str) -> dict[str, Any]:
    """The stack's whole flag set as one flagd document, keys sorted."""
    return {
        "$schema": SCHEMA_URL,
        "metadata": {
            "flagSetId": f"rollout/{stack}",
            "generated": conventions.GENERATED_HEADER.format(stack=stack),
        },
        "flags": {key: flag_definition(config.flags[key], _weight_of(config, config.flags[key])) for key in sorted(config.flags)},
    }


def _weight_of(config: StackConfig, flag: Any) -> int:
    return config.service(flag.service).rollout.weight if isinstance(flag, CanaryFlag) else 0


def dumps(document: dict[str, Any]) -> str:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
