"""A generated password, kept in the stack's state as a secret.

The Grafana admin password of the stacks that install Grafana. It is made by a
dynamic provider that runs in the program's own Python (``pulumi.dynamic``), so
the stack needs no extra provider plugin: an air-gapped site running the engine
from a module mirror has the Kubernetes provider and nothing else to fetch.

The value is drawn once, on create, from the operating system's CSPRNG
(``secrets``), and is only ever an Output marked secret: the state stores it
encrypted, previews show ``[secret]``. Changing ``length`` draws a new one
(a replacement); anything else keeps it.
"""

from __future__ import annotations

import secrets
import string

import pulumi
from pulumi import dynamic

ALPHABET = string.ascii_letters + string.digits


class _PasswordProvider(dynamic.ResourceProvider):
    def create(self, props):
        length = int(props["length"])
        value = "".join(secrets.choice(ALPHABET) for _ in range(length))
        return dynamic.CreateResult(id_=secrets.token_hex(8), outs={"length": length, "result": value})

    def diff(self, _id, olds, news):
        changed = int(olds.get("length", 0)) != int(news["length"])
        return dynamic.DiffResult(changes=changed, replaces=["length"] if changed else [], delete_before_replace=True)

    def update(self, _id, olds, news):
        return dynamic.UpdateResult(outs={"length": int(news["length"]), "result": olds["result"]})


class GeneratedPassword(dynamic.Resource):
    """A password of ``length`` letters and digits; ``result`` is a secret Output."""

    result: pulumi.Output[str]

    def __init__(self, name: str, length: int = 32, opts: pulumi.ResourceOptions | None = None):
        if not 16 <= length <= 256:
            raise ValueError("GeneratedPassword length must be between 16 and 256")
        super().__init__(
            _PasswordProvider(),
            name,
            {"length": length, "result": None},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["result"])),
        )
