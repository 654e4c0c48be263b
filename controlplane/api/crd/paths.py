"""`field.Path` rendering: `.child`, `[key]` for map keys, `[index]` for list items."""

from __future__ import annotations

__all__ = ["child", "index", "key"]


def child(path: str, *names: str) -> str:
    for name in names:
        path = f"{path}.{name}" if path else name
    return path


def key(path: str, name: str) -> str:
    return f"{path}[{name}]"


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"
