"""Storage errors; the API server translates them into Status errors once, at its boundary."""

from __future__ import annotations

from controlplane.storage.interface import KeyValue

__all__ = ["Compacted", "KeyExists", "KeyNotFound", "RevisionConflict", "StorageError", "Unavailable"]


class StorageError(Exception):
    """Base of every storage failure."""


class KeyExists(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionConflict(StorageError):
    """The key moved since `expected`; `current` is what is stored now."""

    def __init__(self, key: str, expected: int, current: KeyValue) -> None:
        super().__init__(f"revision conflict on {key}: expected {expected}, now {current.mod_revision}")
        self.key = key
        self.expected = expected
        self.current = current


class Compacted(StorageError):
    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"required revision {requested} has been compacted (compacted at {compacted})")
        self.requested = requested
        self.compacted = compacted


class Unavailable(StorageError):
    """The backend cannot serve (closed, disk error); maps to 503 / 500."""
