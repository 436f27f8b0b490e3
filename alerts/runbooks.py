"""docs/runbooks/<Alert>.md, one per alert, generated so every one has the same shape.

Regenerate with ``.venv/bin/python -m rollout.build.runbooks`` (which loads the
shipped stacks and writes the files); a test fails when a runbook is stale,
missing, or left over from an alert that no longer exists.
What to do is written here per alert; what it means and how to confirm it
come from the alert itself (production's thresholds).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from alerts.catalogue import all_alerts
from alerts.model import Alert
from rollout.model.config import StackConfig

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ROOT / "docs" / "runbooks"
REFERENCE_STACK = "production"

ROLLBACK = [
    "Roll the canary back now: `rollout rollback --stack <stack> --reason \"<alert>\"`, commit, and `pulumi up` "
    "(the Rollback workflow does this when the webhook fires; it never waits for a gate).",
    "Compare the canary with stable on the Rollout dashboard to find what changed (image, flags, config).",
    "Fix forward in a new canary image; the next rollout starts again from stage 0.",
]
SLO_PAGE = [
    "Find the track and instance that fail: compare stable and canary on the Service overview dashboard.",
    "If the canary is the source, roll it back (`rollout rollback --stack <stack> --reason \"<alert>\"`).",
    "Otherwise treat it as an incident of the stable service: recent deploys, dependencies, capacity.",
]
SLO_TICKET = [
    "Open a ticket: the budget will run out before the window ends at this pace.",
    "Look for a steady source of bad events (one endpoint, one client, one dependency) on the SLOs dashboard.",
]
ACTIONS: dict[str, list[str]] = {
    "ServiceDown": [
        "Check the pods or containers of both tracks: `kubectl -n <namespace> get pods -l app.kubernetes.io/name=<service>` (or `docker ps`).",
        "Read the last logs and events of the failing pods; restart or roll back the last change.",
        "If only the network path is broken, check the Service endpoints and the HTTPRoute.",
    ],
    "ScrapeTargetDown": [
        "Open Prometheus' Targets page and read the scrape error of the target.",
        "Check that the target runs and listens on the scraped port; fix its ServiceMonitor or address.",
    ],
    "Watchdog": [
        "Nothing to do while it fires: it proves Prometheus → Alertmanager works.",
        "If it stops arriving, check Prometheus' alerting targets and Alertmanager's health first.",
    ],
    "PrometheusNotificationsFailing": [
        "Check Alertmanager's health and that Prometheus resolves and reaches it.",
        "Read Prometheus' log for the notification errors.",
    ],
    "PrometheusRuleEvaluationFailures": [
        "Read Prometheus' Rules page: the failing rule shows its error.",
        "Usually a query that returns duplicate series after a relabelling change: fix the rule or the labels.",
    ],
    "PrometheusTSDBCompactionsFailing": [
        "Read Prometheus' log for the compaction error; check free disk space on its volume.",
        "If a block is corrupt, stop Prometheus, move the block aside, and start it again.",
    ],
    "AvailabilitySLOBurnRate": SLO_PAGE + SLO_TICKET,
    "LatencySLOBurnRate": SLO_PAGE + SLO_TICKET,
    "ErrorRateSLOBurnRate": SLO_PAGE + SLO_TICKET,
    "CanaryLatencyP95High": ROLLBACK,
    "CanaryLatencyP99High": ROLLBACK,
    "CanaryErrorRateHigh": ROLLBACK,
    "CanaryErrorRateCritical": ROLLBACK,
    "CanaryWorseThanStable": ROLLBACK,
    "CanaryHealthChecksFailing": ROLLBACK,
    "ServiceLatencyP99High": [
        "Find the slow endpoints on the Service overview dashboard; check saturation (CPU, memory) per track.",
        "Scale the stable track or roll back its last change; no canary may advance while stable is this slow.",
    ],
    "ServiceErrorRateHigh": [
        "Find the failing endpoints and their errors in the service's logs.",
        "Roll back the stable track's last change or fail over the failing dependency.",
    ],
    "PrometheusRuleEvaluationSlow": [
        "Find the slow group on Prometheus' Rules page; move costly expressions into recording rules.",
        "Check Prometheus' CPU: raise its resources in `rollout:monitoring.prometheusResources`.",
    ],
    "CanaryNoTraffic": [
        "Check the HTTPRoute's backend weights: `kubectl -n <namespace> get httproute <service> -o yaml`.",
        "Check that the canary's pods are ready and its Service has endpoints.",
        "Hold the rollout: no stage may advance without canary traffic (the gates need a minimum of requests).",
    ],
    "PrometheusConfigReloadFailed": [
        "Read Prometheus' log for the reload error; the old config stays in effect.",
        "Run `rollout render` and `promtool check config` on the result; fix and redeploy.",
    ],
    "AlertmanagerConfigReloadFailed": [
        "Read Alertmanager's log for the reload error; the old routing stays in effect.",
        "Run `rollout render` and `amtool check-config` on the result; fix and redeploy.",
    ],
    "CITestPassRatioLow": [
        "Open the CI run that pushed the result; fix or quarantine the failing tests.",
        "Do not advance a rollout on a red suite.",
    ],
    "CIResultsStale": [
        "Check that CI runs and that its push step reaches the Pushgateway.",
    ],
    "PrometheusActiveSeriesOverBudget": [
        "Find the metrics with the most series: `topk(10, count by (__name__) ({__name__=~\".+\"}))`.",
        "Drop or aggregate the label with unbounded values, or raise `rollout:monitoring.budgets.activeSeries`.",
    ],
    "PrometheusIngestionRateSpike": [
        "Find the targets that ingest most: `topk(10, scrape_samples_scraped)`.",
        "Lower their scrape frequency, drop unused metrics, or raise the budget.",
    ],
    "ScrapeSampleLimitHit": [
        "Find the target on Prometheus' Targets page; its data is being dropped whole.",
        "Cut its series or raise its sample limit.",
    ],
    "NodeFilesystemAlmostFull": [
        "Find what grows on the filesystem; for Prometheus' volume, lower retention or grow the volume.",
    ],
    "SafetyFlagEnabled": [
        "Read the flag's reason in the stack file; it is on by decision, not by fault.",
        "Switch it off (`enabled: false` in `stacks/Pulumi.<stack>.yaml`, then `pulumi up`) when the reason is gone; rollouts stay blocked until then.",
    ],
    "AlertmanagerNotificationsFailing": [
        "Read Alertmanager's log for the integration's error: an expired token or webhook URL is the usual cause.",
        "Rotate the secret: `pulumi config set --secret --path 'rollout:secrets.<name>' <value>`, then `pulumi up`.",
    ],
    "CertificateExpiringSoon": [
        "Renew the certificate (or check why automatic renewal stopped) before it expires.",
    ],
    "UnauthorizedRequestsHigh": [
        "Find the clients that are denied (access logs by client and endpoint).",
        "A broken client: fix its credentials. A scan or a leaked credential: block the source and rotate the credential.",
    ],
}

_TEMPLATE = re.compile(r"\{\{ \$labels\.(\w+) \}\}")


def _base_name(name: str) -> str:
    return re.sub(r"(Critical|High)$", "", name) if "SLOBurnRate" in name else name


def _plain(text: str) -> str:
    return _TEMPLATE.sub(lambda m: f"<{m.group(1)}>", text)


def render_runbook(alert: Alert) -> str:
    steps = ACTIONS[_base_name(alert.name)]
    rollback = "yes: it also starts the rollback workflow" if alert.rollback else "no"
    for_ = "at once" if alert.for_ == "0s" else f"after {alert.for_}"
    return "\n".join(
        [
            f"# {alert.name}",
            "",
            "<!-- Generated from alerts/ by `python -m rollout.build.runbooks`; do not edit. -->",
            "",
            f"**{_plain(alert.summary)}**",
            "",
            f"| severity | priority | category | fires | rollback trigger |",
            "|---|---|---|---|---|",
            f"| {alert.severity} | {alert.priority} | {alert.category} | {for_} | {rollback} |",
            "",
            "## What it means",
            "",
            _plain(alert.description),
            "",
            "## How to confirm",
            "",
            f"Run the alert's query in Prometheus (thresholds as in `{REFERENCE_STACK}`; each stack sets its own):",
            "",
            "```promql",
            alert.expr,
            "```",
            "",
            "## What to do",
            "",
            *[f"{i}. {step}" for i, step in enumerate(steps, 1)],
            "",
        ]
    )


def catalogue_alerts(configs: Iterable[StackConfig]) -> list[Alert]:
    """Every alert the given stacks declare, as the first stack that has it words it."""
    seen: dict[str, Alert] = {}
    for config in configs:
        for alert in all_alerts(config):
            seen.setdefault(alert.name, alert)
    return list(seen.values())


def runbooks(configs: Iterable[StackConfig]) -> dict[str, str]:
    """File name -> text for every alert of ``configs``, plus the index."""
    alerts = catalogue_alerts(configs)
    files = {f"{alert.name}.md": render_runbook(alert) for alert in alerts}
    index = ["# Runbooks", "", "<!-- Generated by `python -m rollout.build.runbooks`; do not edit. -->", ""]
    index += ["| alert | priority | category |", "|---|---|---|"]
    for alert in sorted(alerts, key=lambda a: (a.priority, a.name)):
        index.append(f"| [{alert.name}]({alert.name}.md) | {alert.priority} | {alert.category} |")
    files["README.md"] = "\n".join(index) + "\n"
    return files
