"""Warnings ``rollout check`` prints about a valid config that will still hurt someone.

A warning never changes an exit code: the config is valid, and the deployment
works; it names the key and what to set it to.
"""

from __future__ import annotations

import urllib.parse

from rollout.load.stack import shown_stack_file
from rollout.model.config import StackConfig


def warnings(config: StackConfig, stack: str) -> list[str]:
    found = []
    base = config.alerting.runbook_base_url
    if config.tier != "development" and urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        found.append(
            f"{shown_stack_file(stack)}: rollout:alerting.runbookBaseUrl is {base!r}, not an http(s) URL: "
            "every alert's runbook link is dead in Slack, PagerDuty and mail; set it to where the runbooks "
            "are served, e.g. https://github.com/<org>/<repo>/blob/main/docs/runbooks"
        )
    if config.target == "kubernetes" and config.tier != "development":
        for index, service in enumerate(config.services):
            if not service.route.hostnames:
                found.append(
                    f"{shown_stack_file(stack)}: rollout:services[{index}].route.hostnames is empty: the HTTPRoute "
                    f"of {service.name} takes every host the shared Gateway accepts; list the service's host names"
                )
    return found
