"""Errors that reach users as one clear message, never as a traceback."""

from __future__ import annotations


class KeyedError(ValueError):
    """A validation failure at a key below the one being validated.

    Raised inside model validators; the loader appends ``path`` to the location
    pydantic reports, so the message names the exact key.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class ConfigError(Exception):
    """A stack config that cannot be used.

    ``problems`` holds one line per problem, each naming the file, the key path
    and what is allowed, e.g.
    ``stacks/Pulumi.production.yaml: rollout:flags.aatc.percentage: 130 is not between 0 and 100``.
    """

    def __init__(self, problems: list[str]) -> None:
        # One line per problem, whatever a key or value holds.
        problems = [p.replace("\r", "\\r").replace("\n", "\\n") for p in problems]
        super().__init__("\n".join(problems))
        self.problems = problems


class UsageError(Exception):
    """A command was called with arguments it cannot use (exit 2)."""


class Busy(Exception):
    """Another edit holds the stack file's lock past the wait (exit 1: try again)."""
