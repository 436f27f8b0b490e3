"""Secrets in the stack config: ciphertext in the file, SecretRefs in the model.

A stack file holds each secret as ``{secure: <ciphertext>}``; :func:`mark_secure_leaves`
turns those leaves into :class:`~rollout.model.config.SecretRef` without a value
(the CLI never decrypts) and notes any that is not ciphertext. Under Pulumi,
:func:`read_pulumi_config` reads the engine's decrypted config, with the values
of ``rollout:secrets`` as SecretRefs holding them.
"""

from __future__ import annotations

import base64

import json
import re
from typing import Any

from rollout.model import conventions
from rollout.model.config import SecretRef

NS = conventions.CONFIG_NAMESPACE
#: The one key whose values are secrets: ``rollout:secrets``.
SECRETS_KEY = "secrets"


_B64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
_PASSPHRASE_CIPHERTEXT = re.compile(rf"v1:(?P<nonce>{_B64}):(?P<sealed>{_B64})")
_CIPHERTEXT = re.compile(_B64)


def is_ciphertext(value: str, passphrase: bool) -> bool:
    """Whether ``value`` has the form of a Pulumi secret's ciphertext.

    The passphrase provider's is ``v1:`` a 12-byte nonce and the sealed value
    (with its 16-byte tag), each base64; the other providers' is base64 of at
    least 16 bytes. Clear text rarely has either form; an empty value never.
    """
    if passphrase:
        match = _PASSPHRASE_CIPHERTEXT.fullmatch(value)
        return bool(match) and len(base64.b64decode(match["nonce"])) == 12 and len(base64.b64decode(match["sealed"])) >= 16
    return bool(_CIPHERTEXT.fullmatch(value)) and len(base64.b64decode(value)) >= 16


def mark_secure_leaves(value: Any, path: str, not_ciphertext: list[str], passphrase: bool) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"} and isinstance(value["secure"], str):
            if not is_ciphertext(value["secure"], passphrase):
                not_ciphertext.append(path)
            return SecretRef(path, None)
        return {k: mark_secure_leaves(v, f"{path}.{k}", not_ciphertext, passphrase) for k, v in value.items()}
    if isinstance(value, list):
        return [mark_secure_leaves(v, f"{path}[{i}]", not_ciphertext, passphrase) for i, v in enumerate(value)]
    return value


# --- reading pulumi.Config ---------------------------------------------------------


def read_pulumi_config() -> dict[str, Any]:
    """The raw ``rollout:`` mapping as the Pulumi engine hands it to the program.

    Pulumi passes every value as text (objects as JSON). Values of the
    ``rollout:secrets`` key, which the engine marks secret, become SecretRefs
    holding the decrypted value.
    """
    from pulumi.runtime import config as runtime_config  # only the program reads Pulumi's config

    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    raw: dict[str, Any] = {}
    for key, text in sorted(merged.items()):
        namespace, _, name = key.partition(":")
        if namespace != NS or not name:
            continue
        value = _decode(text)
        if runtime_config.is_config_secret(key):
            value = _wrap_secret_leaves(value, key) if name == SECRETS_KEY else SecretRef(key, None)
        raw[name] = value
    return raw


def _decode(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _wrap_secret_leaves(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return {k: _wrap_secret_leaves(v, f"{path}.{k}") for k, v in value.items()}
    if value is None:
        return None
    return SecretRef(path, value if isinstance(value, str) else json.dumps(value))

