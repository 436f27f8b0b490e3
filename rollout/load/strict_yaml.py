"""A hardened YAML reader for stack files: one meaning, bounded cost, no value repeated.

:func:`check_structure` refuses, before anything is built, shapes no stack file
has (self-reference, deep nesting, alias bombs, tags, anchors on secrets);
:class:`StrictLoader` refuses duplicate keys and scalars that YAML 1.1 and 1.2
read differently. :func:`load_strict` runs both and turns every problem into
one line naming the file, the line and the column.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from rollout.load.secrets import NS, SECRETS_KEY
from rollout.model.errors import ConfigError


# libyaml's parser when PyYAML was built with it: the same documents, several
# times faster than the pure-Python one (a stack file is read a few times per command).
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StrictLoader(SafeLoader):
    """SafeLoader that refuses duplicate keys, which YAML parsers differ on.

    A value its explicit tag cannot hold (``!!int hunter2``) is an error at its
    line that does not repeat the value: it may be a secret typed in clear.
    """

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError):
            raise yaml.constructor.ConstructorError(
                None, None, f"the value cannot be read as its tag {node.tag} says", node.start_mark
            ) from None


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _timestamps_as_text(loader: StrictLoader, node: yaml.ScalarNode) -> str:
    # Pulumi hands timestamps to the program as text; do the same here.
    return loader.construct_scalar(node)


StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamps_as_text)


#: How deep collections may nest in a stack file; the deepest key of a valid one is 8 levels down.
MAX_DEPTH = 32
#: How many nodes aliases (``*name``) may add to a stack file in all, counting what they repeat:
#: 25x what a 100-service stack that shares its blocks with anchors adds (about 20,000), and
#: small enough that a file at the limit is read in well under a second (an alias bomb goes no further).
MAX_ALIAS_NODES = 500_000
#: The tags a stack file may spell out (``!!str 5``); no other tag means anything to Pulumi.
ALLOWED_TAGS = frozenset(
    {"!"} | {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}
)


class _Frame:
    __slots__ = ("mapping", "anchor", "size", "expect_key", "key", "secret", "is_key")

    def __init__(self, mapping: bool, anchor: str | None, secret: bool, is_key: bool) -> None:
        self.mapping = mapping
        self.is_key = is_key
        self.anchor = anchor
        self.size = 1
        self.expect_key = True
        self.key: Any = None
        self.secret = secret


def check_structure(text: str, shown: str) -> int:
    """Refuse, before anything is built from it, YAML whose shape no stack file has.

    Read as a stream of events (no recursion, nothing expanded), so a file that
    refers to itself (``&a [*a]``), nests deeper than :data:`MAX_DEPTH`, or
    whose aliases would add more than :data:`MAX_ALIAS_NODES` nodes (an alias
    bomb) fails in time and memory proportional to its size. Tags other than
    :data:`ALLOWED_TAGS` (``!!binary``, ``!anything``: often a clear-text value
    that starts with ``!``) and anchors or aliases on secrets are refused too.
    No message repeats a value. Returns how many nodes the aliases add.
    """
    stack: list[_Frame] = []
    sizes: dict[str, int] = {}
    added = 0
    root_secret_path = ("config", f"{NS}:{SECRETS_KEY}")
    keys: list[Any] = []

    def fail(mark: Any, problem: str) -> None:
        raise ConfigError([f"{shown}: line {mark.line + 1}, column {mark.column + 1}: {problem}"])

    def place(event: Any) -> tuple[bool, bool]:
        """(is a mapping key, lies in a secret) for the node the event starts."""
        if not stack:
            return False, False
        top = stack[-1]
        if top.mapping and top.expect_key:
            return True, top.secret
        path = tuple(keys)
        secret = top.secret or path[:2] == root_secret_path or (top.mapping and top.key == "secure")
        return False, secret

    def finish(size: int, anchor: str | None, is_key: bool, key: Any = None) -> None:
        if anchor is not None:
            sizes[anchor] = size
        if stack:
            top = stack[-1]
            top.size += size
            if top.mapping:
                if is_key:
                    top.key = key
                    keys.append(key)
                    top.expect_key = False
                else:
                    if not top.expect_key:
                        keys.pop()
                    top.expect_key = True

    try:
        for event in yaml.parse(text, Loader=SafeLoader):
            if isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.AliasEvent)):
                is_key, secret = place(event)
                tag = getattr(event, "tag", None)
                if tag is not None and tag not in ALLOWED_TAGS and not (
                    isinstance(event, yaml.ScalarEvent) and event.implicit[0]
                ):
                    fail(event.start_mark, "this YAML tag is not allowed (a value that starts with ! must be quoted); "
                         "a stack file holds text, numbers, booleans, lists and mappings")
                if event.anchor is not None and secret:
                    fail(event.start_mark, "anchors and aliases are not allowed in secrets; "
                         "set each secret with `pulumi config set --secret`")
                if isinstance(event, yaml.AliasEvent):
                    if event.anchor in (f.anchor for f in stack):
                        fail(event.start_mark, f"the alias *{event.anchor} refers to a node that contains it; "
                             "a stack file cannot refer to itself")
                    size = sizes.get(event.anchor, 1)
                    added += size
                    if added > MAX_ALIAS_NODES:
                        fail(event.start_mark, f"aliases repeat more than {MAX_ALIAS_NODES} nodes in all; "
                             "write the repeated blocks out, or use fewer aliases")
                    finish(size, None, is_key)
                elif isinstance(event, yaml.ScalarEvent):
                    finish(1, event.anchor, is_key, event.value)
                else:
                    if len(stack) >= MAX_DEPTH:
                        fail(event.start_mark, f"nests deeper than {MAX_DEPTH} levels; no stack file key is that deep")
                    stack.append(_Frame(isinstance(event, yaml.MappingStartEvent), event.anchor, secret, is_key))
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = stack.pop()
                finish(frame.size, frame.anchor, frame.is_key)
    except yaml.YAMLError:
        pass  # the loader reports syntax errors with their line
    return added


# YAML 1.1 (PyYAML) and YAML 1.2 (Pulumi's Go parser) read these differently: 031 is
# 25 to one and 31 to the other, 1_000 and 1:30 are numbers to one and text to the
# other, yes/no/on/off booleans to one only. A stack file means one thing to both.
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_PLAIN_FLOAT = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
_PLAIN_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")


def _ambiguous(node: yaml.ScalarNode, what: str) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(
        None, None, f"this value is not a plain {what}: YAML readers differ on it; {_HINTS[what]}", node.start_mark
    )


_HINTS = {
    "number": "write digits without leading zeros, underscores, 0x/0o/0b or colons, or quote it",
    "boolean": "write true or false, or quote it",
}


def _strict_int(loader: StrictLoader, node: yaml.ScalarNode) -> int:
    if not _PLAIN_INT.fullmatch(node.value):
        raise _ambiguous(node, "number")
    return int(node.value)


def _strict_float(loader: StrictLoader, node: yaml.ScalarNode) -> float:
    if not _PLAIN_FLOAT.fullmatch(node.value):
        raise _ambiguous(node, "number")
    return loader.construct_yaml_float(node)


def _strict_bool(loader: StrictLoader, node: yaml.ScalarNode) -> bool:
    if not _PLAIN_BOOL.fullmatch(node.value):
        raise _ambiguous(node, "boolean")
    return node.value.lower() == "true"


StrictLoader.add_constructor("tag:yaml.org,2002:int", _strict_int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", _strict_float)
StrictLoader.add_constructor("tag:yaml.org,2002:bool", _strict_bool)


def load_strict(text: str, shown: str) -> Any:
    """The YAML document in ``text`` (a stack file shown as ``shown``), read strictly.

    Raises ConfigError with one line naming ``shown``, the line and the column.
    """
    check_structure(text, shown)
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = err.problem or err.context or "invalid YAML"
        raise ConfigError([f"{shown}: {where}{problem}"]) from None
    except yaml.YAMLError as err:
        raise ConfigError([f"{shown}: invalid YAML: {err}"]) from None
