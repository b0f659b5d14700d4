"""The one exception a configuration problem raises."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem: `path` is the file, `key` the dotted key ("" for the whole file)."""

    def __init__(self, path: str, key: str, reason: str) -> None:
        # All three in args, so that the exception pickles and compares by value in tests.
        super().__init__(path, key, reason)
        self.path = path
        self.key = key
        self.reason = reason

    def __str__(self) -> str:
        if not self.key:
            return f"{self.path}: {self.reason}"
        return f"{self.path}: {self.key}: {self.reason}"
