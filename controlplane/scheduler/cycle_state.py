"""CycleState: what plugins compute once per scheduling cycle (in PreFilter/PreScore) and read
per node, plus the plugins that opted out of later extension points by returning Skip."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["CycleState", "StateData"]


class StateData:
    """A value kept in CycleState. Preemption clones the state once per candidate node and
    mutates the clone through PreFilter extensions, so mutable data must override clone()."""

    def clone(self) -> StateData:
        return copy.copy(self)


class CycleState:
    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self.skip_filter_plugins: set[str] = set()
        self.skip_score_plugins: set[str] = set()
        # The filter plugins left once the skipped ones are out, worked out once per cycle.
        self.filter_plugins: list[Any] | None = None

    def read(self, key: str) -> Any:
        """The value under `key`; KeyError when no plugin wrote it (PreFilter did not run)."""
        return self._data[key]

    def get(self, key: str) -> Any:
        return self._data.get(key)

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def clone(self) -> CycleState:
        out = CycleState()
        out._data = {k: (v.clone() if isinstance(v, StateData) else v) for k, v in self._data.items()}
        out.skip_filter_plugins = set(self.skip_filter_plugins)
        out.skip_score_plugins = set(self.skip_score_plugins)
        out.filter_plugins = self.filter_plugins
        return out
