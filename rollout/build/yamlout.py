"""Deterministic YAML for rendered files: a "generated" header, block style,
multi-line strings (PromQL) as literal blocks, key order as built."""

from __future__ import annotations

from typing import Any

import yaml

from rollout.model import conventions


# libyaml's emitter where PyYAML has it: the same text as the pure-Python one,
# several times faster (a stack's rules and values are hundreds of documents).
_SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        # A value used twice (a relabeling list, a probe) is written out twice:
        # anchors and aliases (&id001 / *id001) hide what a reviewer reads.
        return True


def _str(dumper: _SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(document: Any, stack: str, note: str | None = None) -> str:
    """YAML text starting with the generated-file header line, and ``note`` (who reads
    the file) as a second comment line when given."""
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True)
    header = f"# {conventions.GENERATED_HEADER.format(stack=stack)}\n"
    if note:
        header += f"# {note}\n"
    return header + body
