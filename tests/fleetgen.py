"""A generated fleet: any number of stacks in three waves, each with release groups.

``build_fleet(dest, regions=10)`` writes a project (the reference project's
Pulumi.yaml) whose stacks/ holds:

- wave 0: ``staging`` (the reference staging stack);
- wave 1: ``prod-canary`` (one small region, promotesFrom staging);
- wave 2: ``prod-r01`` ... ``prod-rNN`` (promotesFrom [staging, prod-canary]), a fleet
  group ``regions`` with ``maxInProgress`` 3, and a freeze window every weekend
  (Friday 16:00 to Monday 08:00 Europe/Berlin); the last region allows no override.

Every stack ships ``services`` services (default 5): two release groups,
``checkout`` (checkout-api, checkout-worker) and ``search`` (search-api,
search-indexer, search-web), then ``svc-NN`` services that move alone. Each
runs release 1.0.0 on both tracks, at 0 % since ``start``, on a custom plan of
0 → 50 → 100 %, an hour a stage. The benchmark generates fleets of any size
with it too.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import yaml

from stackfiles import FIXTURE

GROUPS = {"checkout": ["checkout-api", "checkout-worker"], "search": ["search-api", "search-indexer", "search-web"]}
GROUPED = [name for members in GROUPS.values() for name in members]
STAGES = [{"weight": 0, "soak": "1h"}, {"weight": 50, "soak": "1h"}, {"weight": 100, "soak": "1h"}]
WEEKEND = {"timeZone": "Europe/Berlin", "allowOverride": True,
           "windows": [{"name": "weekend", "start": "Friday 16:00", "end": "Monday 08:00"}]}


def image(service: str, version: str) -> str:
    return f"ghcr.io/example/{service}:{version}"


def service_names(count: int) -> list[str]:
    return (GROUPED + [f"svc-{n:02d}" for n in range(count - len(GROUPED))])[:count] if count >= len(GROUPED) \
        else [f"svc-{n:02d}" for n in range(count)]


def _services(template: dict, names: list[str], start: str) -> list[dict]:
    services = []
    for name in names:
        service = copy.deepcopy(template)
        service["name"] = name
        service["stable"]["image"] = image(name, "1.0.0")
        service["stable"].pop("previousImage", None)
        service["canary"]["image"] = image(name, "1.0.0")
        service["route"] = {"hostnames": [f"{name}.example.com"], "matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
        service["rollout"] = {"plan": "custom", "stages": copy.deepcopy(STAGES),
                              "history": [{"weight": 0, "startedAt": start}]}
        services.append(service)
    return services


def region_names(regions: int) -> list[str]:
    return [f"prod-r{n:02d}" for n in range(1, regions + 1)]


def build_fleet(dest: Path, regions: int = 10, services: int = 5, start: str = "2031-03-03T06:00:00Z",
                limit: int = 3) -> list[str]:
    """Write the fleet into ``dest``; returns its stacks in promotion order."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE / "Pulumi.yaml", dest / "Pulumi.yaml")
    (dest / "stacks").mkdir(exist_ok=True)
    names = service_names(services)
    groups = {g: m for g, m in GROUPS.items() if all(n in names for n in m)}
    staging = yaml.safe_load((FIXTURE / "stacks" / "Pulumi.staging.yaml").read_text())
    production = yaml.safe_load((FIXTURE / "stacks" / "Pulumi.production.yaml").read_text())
    template = production["config"]["rollout:services"][0]
    stacks = {"staging": (staging, None), "prod-canary": (production, "staging")}
    for region in region_names(regions):
        stacks[region] = (production, ["staging", "prod-canary"])
    for stack, (base, upstream) in stacks.items():
        document = copy.deepcopy(base)
        config = document["config"]
        config.pop("rollout:promotesFrom", None)
        if upstream is not None:
            config["rollout:promotesFrom"] = upstream
        config["rollout:services"] = _services(template, names, start)
        config["rollout:releaseGroups"] = copy.deepcopy(groups)
        if stack.startswith("prod-r"):
            config["rollout:fleet"] = {"group": "regions", "maxInProgress": limit}
            config["rollout:freeze"] = copy.deepcopy(WEEKEND)
            if stack == region_names(regions)[-1]:
                config["rollout:freeze"]["allowOverride"] = False
        (dest / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return list(stacks)


__all__ = ["GROUPS", "build_fleet", "image", "region_names", "service_names"]
