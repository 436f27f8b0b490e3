"""The flags as a stack resolves them now, evaluated by flagd's own in-process evaluator.

For CI jobs (``rollout flags --format env``): every flag of the rendered
document is evaluated once, for one evaluation context (a targeting key and a
track), by the OpenFeature flagd provider reading the document from a file;
percentage and progressive flags therefore answer for that key, at this time.
"""

from __future__ import annotations

import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from rollout.model import conventions
from rollout.model.config import StackConfig
from rollout.build.flags import dumps, flag_document

#: The name the flagd provider gives its file watcher's thread.
WATCHER_THREAD = "FlagdFileWatcherWorkerThread"
#: Longer than the watcher's poll interval (the provider's deadline, 500 ms by default).
WATCHER_JOIN_S = 5.0


def at_time(document: Any, epoch_seconds: int) -> Any:
    """The flag document with every read of the evaluation time (``{"var": "$flagd.timestamp"}``)
    replaced by ``epoch_seconds``: flagd then answers as it would at that time."""
    if isinstance(document, dict):
        if document == {"var": "$flagd.timestamp"} or document == {"var": ["$flagd.timestamp"]}:
            return epoch_seconds
        return {key: at_time(value, epoch_seconds) for key, value in document.items()}
    if isinstance(document, list):
        return [at_time(value, epoch_seconds) for value in document]
    return document


def resolve(
    config: StackConfig, stack: str, targeting_key: str, track: str, at: datetime | None = None
) -> dict[str, bool]:
    """Every flag for one evaluation context, now or (``at``) as flagd will resolve them then."""
    # flagd's evaluator loads only for `rollout flags`, not for every build.
    from openfeature import api
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType
    from openfeature.evaluation_context import EvaluationContext

    # flagd hashes the key with mmh3, which crashes the whole process on text
    # that is not valid Unicode (a lone surrogate, what a stray byte in argv becomes).
    targeting_key.encode("utf-8")
    running = set(threading.enumerate())
    with tempfile.TemporaryDirectory(prefix="rollout-flags-") as scratch:
        path = Path(scratch) / conventions.FLAGS_FILE_NAME
        document = flag_document(config, stack)
        if at is not None:
            document = at_time(document, int(at.timestamp()))
        path.write_text(dumps(document), encoding="utf-8")
        domain = f"rollout-flags-{stack}"
        provider = FlagdProvider(resolver_type=ResolverType.IN_PROCESS, offline_flag_source_path=str(path))
        api.set_provider_and_wait(provider, domain=domain)
        try:
            client = api.get_client(domain=domain)
            context = EvaluationContext(targeting_key=targeting_key, attributes={conventions.TRACK_LABEL: track})
            values = {}
            for key in sorted(config.flags):
                details = client.get_boolean_details(key, False, context)
                if details.error_code is not None:
                    raise RuntimeError(f"flagd could not evaluate {key}: {details.error_message or details.error_code}")
                values[key] = bool(details.value)
            return values
        finally:
            provider.shutdown()
            # The provider's file watcher wakes once more after its shutdown and
            # reads the file: wait for it, or it finds the file gone and logs an error.
            for thread in set(threading.enumerate()) - running:
                if thread.name == WATCHER_THREAD:
                    thread.join(timeout=WATCHER_JOIN_S)


def percentages(config: StackConfig, at: datetime) -> dict[str, int]:
    """The share of targeting keys each ``percentage`` and ``progressive`` flag is on for at ``at``:
    a progressive flag's step in effect then (0 before its first step), as the rendered document
    tells flagd. Other strategies have no percentage of their own."""
    found = {}
    for key, flag in sorted(config.flags.items()):
        if flag.strategy == "percentage":
            found[key] = int(flag.percentage)
        elif flag.strategy == "progressive":
            begun = [step.percentage for step in flag.steps if flag.start + step.after <= at]
            found[key] = int(begun[-1]) if begun else 0
    return found


def as_env(values: dict[str, bool], shares: dict[str, int] | None = None) -> str:
    """One ``FLAG_<KEY>=true|false`` line per flag, for $GITHUB_ENV or a shell, and for each flag with a
    percentage (``shares``, from :func:`percentages`) a ``FLAG_<KEY>_PERCENT=<0..100>`` line after it."""
    lines = []
    for key, on in sorted(values.items()):
        lines.append(f"FLAG_{key.upper()}={'true' if on else 'false'}\n")
        if shares and key in shares:
            lines.append(f"FLAG_{key.upper()}_PERCENT={shares[key]}\n")
    return "".join(lines)
