"""Work-queue keys: `namespace/name` for namespaced objects, `name` for cluster-scoped ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["key_of", "split_key"]


def key_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    name = str(meta.get("name", ""))
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.rpartition("/")
    return namespace, name
