"""Every policy of the pack, as plain functions over plain data.

policies/__main__.py wraps them for CrossGuard; rollout/engine/policy_runner.py runs
them over what the program declares under Pulumi's mocks (``rollout check``);
the tests call them with constructed resources. A policy sees only resource
inputs: the rollout state comes from the ``rollout-state`` Stash the program
declares, the flag document from the flags ConfigMap (or Stash on Docker).

Enforcement: the gates are mandatory everywhere. The resource policies are
mandatory in production and advisory elsewhere (``Policy.mandatory``), taken
from the tier in the rollout state; policies/config/ holds the matching
CrossGuard enforcement overrides for non-production stacks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

import yaml

from rollout.model import conventions as c
from rollout.model.releases import is_pinned
from policies.production import PRODUCTION_POLICIES, idle_canary
from policies.staged import GATE_KEYS
from policies.transition import _is_list, gate_transition, judged, shared_transition, whole_numbers  # noqa: F401 - the pack's names
from rollout.gates.judge import GATE_POLICIES
from rollout.gates.ratchet import raises_weight
from rollout.model.transition import TIERS

STATE_STASH = c.STATE_STASH
FLAGS_STASH = "rollout-flags-document"
STASH = "pulumi:index:Stash"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
CHART = "kubernetes:helm.sh/v4:Chart"
CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
GRAFANA_PROVIDER = "pulumi:providers:grafana"
ALERTMANAGER_FILE = c.DOCKER_ALERTMANAGER_FILE
#: Said after "no gate evidence" when the pack ran without its config (a plain `pulumi preview`).
NO_CONFIG_HINT = ("; this preview ran without the pack's config: `rollout stage --stack S --service N` gathers the "
                  "evidence, advances and writes build/policy-config-S.json, and `make preview STACK=S` passes it")


@dataclass(frozen=True)
class Resource:
    """A resource as a policy sees it."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""


@dataclass
class Context:
    """What a run of the policies knows besides the resources."""

    now: datetime
    #: Policy config, as CrossGuard passes it: evidence, deployedState, upstreamState.
    config: Mapping[str, Any] = field(default_factory=dict)
    #: Decrypted secret values, when the runner knows them (under mocks).
    secret_values: tuple[str, ...] = ()
    #: Input paths the program marked secret, by resource URN (under mocks).
    secret_paths: Mapping[str, set[str]] = field(default_factory=dict)
    #: The deployed state's tier when the runner knows it apart from the config (``rollout check``).
    deployed_tier: str | None = None
    #: Shared by the policies of one run (one AnalyzeStack: policies/pack.py): the transition built
    #: and judged once per stash and config, not once per policy. None: every policy builds its own.
    memo: dict | None = None


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str
    message: str
    mandatory: bool


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    remediation: str
    #: True: mandatory everywhere (the gates). False: mandatory in production only.
    always_mandatory: bool
    check: Callable[[list[Resource], Context], Iterable[tuple[str, str]]]

    def mandatory(self, tier: str | None) -> bool:
        return self.always_mandatory or tier == "production"


# --- reading the resources -------------------------------------------------------


def rollout_state(resources: list[Resource]) -> dict | None:
    for resource in resources:
        if resource.type == STASH and resource.name == STATE_STASH:
            value = resource.props.get("input")
            return whole_numbers(json.loads(value) if isinstance(value, str) else value)
    return None


def flag_document(resources: list[Resource]) -> dict | None:
    for resource in resources:
        if resource.type == CONFIGMAP and c.FLAGS_FILE_NAME in (resource.props.get("data") or {}):
            return json.loads(resource.props["data"][c.FLAGS_FILE_NAME])
        if resource.type == STASH and resource.name == FLAGS_STASH:
            value = resource.props.get("input")
            return json.loads(value) if isinstance(value, str) else value
    return None


def _containers(resource: Resource) -> list[dict]:
    if resource.type == DEPLOYMENT:
        return list(((resource.props.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [])
    return []


def _images(resources: list[Resource]) -> Iterable[tuple[str, str]]:
    for resource in resources:
        for container in _containers(resource):
            yield resource.name, str(container.get("image", ""))
        if resource.type == REMOTE_IMAGE:
            yield resource.name, str(resource.props.get("name", ""))


# --- gates -----------------------------------------------------------------------


def _gate(name: str) -> Callable[[list[Resource], Context], Iterable[tuple[str, str]]]:
    def check(resources: list[Resource], context: Context) -> Iterable[tuple[str, str]]:
        state = rollout_state(resources)
        if state is None:
            return [(STATE_STASH, "the program declared no rollout state; the gates cannot judge")]
        violations = judged(state, context)
        unconfigured = not any(key in (context.config or {}) for key in GATE_KEYS)
        return [(f"service {v.service}", v.message + (NO_CONFIG_HINT if unconfigured and "no gate evidence" in v.message
                                                       else "")) for v in violations if v.policy == name]

    return check


def tier_of(resources: list[Resource], context: Context) -> str | None:
    """The tier the resource policies judge by: beside an advance, the stricter of the deployed
    and the proposed (lowering the tier lands in a change of its own, which raises no weight)."""
    state = rollout_state(resources) or {}
    proposed = state.get("tier")
    deployed = context.deployed_tier
    if deployed is None and state.get("services") is not None:
        t = shared_transition(state, context)
        deployed = t.deployed.tier if t.deployed is not None and raises_weight(t) else None
    known = [t for t in (proposed, deployed) if t in TIERS]
    return max(known, key=TIERS.index) if known else proposed


# --- resource policies -------------------------------------------------------------


def pinned_images(resources: list[Resource], context: Context) -> Iterable[tuple[str, str]]:
    for name, image in _images(resources):
        if not is_pinned(image):
            yield name, f"image {image!r} is not pinned: use a tag other than latest, or a digest"


def requests_and_limits(resources: list[Resource], context: Context) -> Iterable[tuple[str, str]]:
    for resource in resources:
        for container in _containers(resource):
            spec = container.get("resources") or {}
            for kind in ("requests", "limits"):
                missing = [k for k in ("cpu", "memory") if not (spec.get(kind) or {}).get(k)]
                if missing:
                    yield resource.name, f"container {container.get('name')!r} has no {kind} for {', '.join(missing)}"


def production_replicas(resources: list[Resource], context: Context) -> Iterable[tuple[str, str]]:
    if tier_of(resources, context) != "production":
        return
    budgets = [r for r in resources if r.type == PDB]
    for resource in resources:
        if resource.type != DEPLOYMENT:
            continue
        spec = resource.props.get("spec") or {}
        if int(spec.get("replicas") or 0) == 0 and idle_canary(resource, rollout_state(resources)):
            continue  # promoted: the canary runs no pods until the next release (rollout.build.traffic)
        if int(spec.get("replicas") or 0) < 2:
            yield resource.name, f"runs {spec.get('replicas')} replica(s); production needs at least 2"
        pod_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        covered = any(
            all(pod_labels.get(k) == v for k, v in (((b.props.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).items())
            for b in budgets
        )
        if not covered:
            yield resource.name, "no PodDisruptionBudget selects its pods"


def _in_production(check: Callable[[list[Resource], Mapping[str, Any] | None], Iterable[tuple[str, str]]]):
    """A policy of policies/production.py: it reports only in a production-tier stack."""
    def policy(resources: list[Resource], context: Context) -> Iterable[tuple[str, str]]:
        return check(resources, rollout_state(resources)) if tier_of(resources, context) == "production" else []

    return policy


def route_weights(resources: list[Resource], context: Context) -> Iterable[tuple[str, str]]:
    state = rollout_state(resources) or {}
    services = state.get("services") or {}
    for resource in resources:
        if resource.type != HTTPROUTE:
            continue
        for rule in (resource.props.get("spec") or {}).get("rules") or []:
            backends = rule.get("backendRefs") or []
            total = sum(int(b.get("weight", 1)) for b in backends)
            if total != 100:
                yield resource.name, f"backend weights sum to {total}, not 100"
            service = resource.props.get("metadata", {}).get("name")
            canary = [b for b in backends if str(b.get("name", "")).endswith(f"-{c.CANARY}")]
            expected = (services.get(service) or {}).get("weight")
            if expected is not None and canary and int(canary[0].get("weight", 0)) != expected:
                yield resource.name, f"the canary's weight is {canary[0].get('weight')}, but the rollout is at {expected} %"


def canary_flags_in_step(resources: list[Resource], context: Context) -> Iterable[tuple[str, str]]:
    state = rollout_state(resources) or {}
    services = state.get("services") or {}
    document = flag_document(resources) or {}
    for key, flag in sorted((document.get("flags") or {}).items()):
        metadata = flag.get("metadata") or {}
        if metadata.get("strategy") != "canary":
            continue
        expected = (services.get(metadata.get("service")) or {}).get("weight")
        if expected is not None and metadata.get("weight") != expected:
            yield f"flag {key}", f"follows weight {metadata.get('weight')}, but {metadata.get('service')}'s rollout is at {expected} %"


def _rule_documents(resources: list[Resource]) -> Iterable[tuple[str, dict]]:
    for resource in resources:
        if resource.type == RULE:
            yield resource.name, resource.props.get("spec") or {}
        if resource.type == CONTAINER:
            for upload in resource.props.get("uploads") or []:
                if str(upload.get("file", "")).startswith(f"{c.DOCKER_PROMETHEUS_DIR}/rules/"):
                    yield resource.name, yaml.safe_load(upload.get("content") or "") or {}


def alert_rules_complete(resources: list[Resource], context: Context) -> Iterable[tuple[str, str]]:
    for name, document in _rule_documents(resources):
        for group in document.get("groups") or []:
            for rule in group.get("rules") or []:
                if "alert" not in rule:
                    continue
                labels, annotations = rule.get("labels") or {}, rule.get("annotations") or {}
                missing = [k for k in ("severity", "priority", "category") if not labels.get(k)]
                missing += [k for k in ("summary", "description", "runbook_url") if not annotations.get(k)]
                if missing:
                    yield name, f"alert {rule['alert']} has no {', '.join(missing)}"


def _alertmanager_configs(resources: list[Resource]) -> Iterable[tuple[str, dict]]:
    for resource in resources:
        if resource.type == CHART and resource.props.get("chart") == "kube-prometheus-stack":
            config = ((resource.props.get("values") or {}).get("alertmanager") or {}).get("config")
            if isinstance(config, Mapping):
                yield resource.name, config
        if resource.type == CONTAINER:
            for upload in resource.props.get("uploads") or []:
                if upload.get("file") == ALERTMANAGER_FILE:
                    config = yaml.safe_load(upload.get("content") or "")
                    if isinstance(config, Mapping):
                        yield resource.name, config


_MATCHER = re.compile(r'^\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')


def _matches(matchers: list[str], labels: Mapping[str, str]) -> bool:
    for matcher in matchers:
        found = _MATCHER.match(matcher)
        if not found:
            return False
        name, op, value = found.groups()
        actual = labels.get(name, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


def receivers_for(route: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    """The receivers an alert with ``labels`` reaches: first matching child routes,
    following ``continue``, else the route's own receiver."""
    found: list[str] = []
    for child in route.get("routes") or []:
        if _matches(child.get("matchers") or [], labels):
            found += receivers_for({**child, "receiver": child.get("receiver", route.get("receiver"))}, labels)
            if not child.get("continue"):
                return found
    return found or [route.get("receiver")]


def pages_reach_pagerduty(resources: list[Resource], context: Context) -> Iterable[tuple[str, str]]:
    tier = tier_of(resources, context)
    for name, config in _alertmanager_configs(resources):
        receivers = {r.get("name"): r for r in config.get("receivers") or []}
        paging = {n for n, r in receivers.items() if r.get("pagerduty_configs")}
        if not paging and tier != "production":
            continue  # a stack that does not page at all, by choice
        for priority in ("P0", "P1"):
            reached = receivers_for(config.get("route") or {}, {"priority": priority, "alertname": "Any"})
            if not set(reached) & paging:
                yield name, f"{priority} alerts reach {', '.join(map(str, reached))}, not PagerDuty"


#: Shapes of credentials that must never sit in a plain input.
_SECRET_SHAPES = (
    re.compile(r"https://hooks\.slack\.com/services/\S+"),
    re.compile(r"https://events\.pagerduty\.com/\S*[?&]token=\S+"),
    re.compile(r"(?i)\b(password|passwd|api_key|apikey|secret|token)\s*[:=]\s*[^\s<\"'{}]{6,}"),
)


def _strings(value: Any, path: str = "", skip: set[str] | frozenset = frozenset()) -> Iterable[str]:
    """Every string in ``value``, leaving out the subtrees at ``skip`` (secret inputs)
    and the values a preview does not know yet (computed, so no clear-text literal)."""
    if path in skip:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in _known_items(value, value.keys()):
            yield from _strings(item, f"{path}.{key}" if path else str(key), skip)
    elif _is_list(value):
        for index, item in _known_items(value, range(len(value))):
            yield from _strings(item, f"{path}[{index}]", skip)


def _known_items(container: Any, keys: Iterable[Any]) -> Iterable[tuple[Any, Any]]:
    for key in keys:
        try:
            yield key, container[key]
        except Exception as err:
            # CrossGuard's proxies raise UnknownValueError for a value a preview
            # has not computed; a policy that let it escape would be skipped whole.
            if type(err).__name__ != "UnknownValueError":
                raise


def credential_inputs(resource: Resource) -> set[str]:
    """The input paths of ``resource`` that carry credentials by design.

    The program passes each of them as a Pulumi secret. CrossGuard hands a policy
    the decrypted value with no mark left on it, so the credential check leaves
    these paths out; the offline runner, which sees the marks, checks instead
    that every one of them is secret.
    """
    props = resource.props
    if resource.type == CHART and isinstance((props.get("values") or {}).get("alertmanager"), Mapping):
        if "config" in props["values"]["alertmanager"]:
            return {"values.alertmanager.config"}
    if resource.type == CONTAINER:
        return {
            f"uploads[{index}].content"
            for index, upload in enumerate(props.get("uploads") or [])
            if upload.get("file") == ALERTMANAGER_FILE
        }
    if resource.type == GRAFANA_PROVIDER and "auth" in props:
        return {"auth"}
    return set()


def no_clear_secrets(resources: list[Resource], context: Context) -> Iterable[tuple[str, str]]:
    for resource in resources:
        if resource.type == "kubernetes:core/v1:Secret":
            continue  # Kubernetes Secrets are where secrets belong; Pulumi keeps their data secret
        by_design = credential_inputs(resource)
        marked = context.secret_paths.get(resource.urn)
        if marked is not None:
            for path in sorted(by_design - set(marked)):
                yield resource.name, f"input {path} carries credentials but is not passed as a secret"
        for text in _strings(resource.props, skip=by_design | set(marked or ())):
            if any(value and value in text for value in context.secret_values):
                yield resource.name, "holds the value of a stack secret in an input that is not secret"
                break
            if any(shape.search(text) for shape in _SECRET_SHAPES):
                yield resource.name, "holds what looks like a credential in clear text"
                break


def prometheus_storage(resources: list[Resource], context: Context) -> Iterable[tuple[str, str]]:
    if tier_of(resources, context) != "production":
        return
    charts = [r for r in resources if r.type == CHART and r.props.get("chart") == "kube-prometheus-stack"]
    if not charts and not any(r.type == RULE for r in resources):
        yield STATE_STASH, "production runs no Prometheus with persistent storage (Kubernetes only)"
    for chart in charts:
        spec = ((chart.props.get("values") or {}).get("prometheus") or {}).get("prometheusSpec") or {}
        if not spec.get("storageSpec"):
            yield chart.name, "Prometheus has no persistent volume"
        if (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted") != "Retain":
            yield chart.name, "Prometheus' volume is not retained when its StatefulSet is deleted"


POLICIES: tuple[Policy, ...] = tuple(
    Policy(gate.name, gate.description, gate.remediation, True, _gate(gate.name)) for gate in GATE_POLICIES.values()
) + (
    Policy(
        "rollout-pinned-images",
        "Every image is pinned by a tag other than latest, or by a digest.",
        "Set the image to an immutable tag or a digest in the stack file.",
        False,
        pinned_images,
    ),
    Policy(
        "rollout-requests-and-limits",
        "Every container sets CPU and memory requests and limits.",
        "Set rollout:services[].resources in the stack file.",
        False,
        requests_and_limits,
    ),
    Policy(
        "rollout-production-replicas",
        "In production, every Deployment runs at least 2 replicas and a PodDisruptionBudget covers it.",
        "Raise the track's replicas to 2 or more; the program declares the PDBs in production.",
        False,
        production_replicas,
    ),
    Policy(
        "rollout-route-weights",
        "Each HTTPRoute's backend weights sum to 100 and the canary's equals the rollout weight.",
        "Let the program derive weights from rollout:services[].rollout.history; do not edit routes by hand.",
        False,
        route_weights,
    ),
    Policy(
        "rollout-canary-flags-in-step",
        "Canary-strategy flags follow the weight of their service's rollout.",
        "Render the flag document from the same stack config as the route.",
        False,
        canary_flags_in_step,
    ),
    Policy(
        "rollout-alert-rules-complete",
        "Every alert rule carries severity, priority and category labels and summary, description and runbook_url annotations.",
        "Build alerts with alerts.model.Alert, which sets them all.",
        False,
        alert_rules_complete,
    ),
    Policy(
        "rollout-pages-reach-pagerduty",
        "P0 and P1 alerts reach a PagerDuty receiver.",
        "Set rollout:alerting.pagerduty to true and the routing key secret.",
        False,
        pages_reach_pagerduty,
    ),
    Policy(
        "rollout-no-clear-secrets",
        "No secret value sits in clear text in a resource input that is not secret.",
        "Keep credentials under rollout:secrets (Pulumi secrets) and pass them on as secrets.",
        False,
        no_clear_secrets,
    ),
    Policy(
        "rollout-prometheus-storage-protected",
        "In production, Prometheus keeps its data on a persistent volume that outlives its StatefulSet.",
        "Set rollout:monitoring.storage.persistent and protect to true.",
        False,
        prometheus_storage,
    ),
) + tuple(Policy(name, about, remedy, False, _in_production(check)) for name, about, remedy, check in PRODUCTION_POLICIES)


def run_policies(resources: list[Resource], context: Context, policies: Iterable[Policy] = POLICIES) -> list[Violation]:
    tier = tier_of(resources, context)
    violations = []
    for policy in policies:
        for resource, message in policy.check(resources, context):
            violations.append(Violation(policy.name, resource, message, policy.mandatory(tier)))
    return violations
