"""Per-node values plugins computed against the snapshot's current NodeInfos, kept in columns
aligned with the snapshot's visiting order, and the windows of that order a cycle visits.

Between two cycles only the one or two nodes that got or lost a pod change, so most of a
plugin's per-node answers (a fit verdict, a resource score, "has taints") can be reused. Kept
on each NodeInfo (`NodeInfo.memo`), reusing them still meant reaching into a few hundred
scattered objects and dicts per plugin per cycle: at 1,000 nodes that pointer chasing, not
the arithmetic, was a third of the scheduling algorithm's time (measured: ~130 µs to read 420
memos, against ~3 µs to slice a list). A column is one list of small ints or bools per
(plugin, question), so a window of it is one slice.

Columns are emptied by the snapshot: one position when that node's NodeInfo changes, all of
them when the order itself changes (nodes came, went or moved zone).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from controlplane.scheduler.nodeinfo import NodeInfo

__all__ = ["COLUMN_LIMIT", "NodeColumns", "NodeWindow"]

T = TypeVar("T")

# Columns kept at once: one per (plugin, question, pod requests) in use. Pods of a few shapes
# use a few; a cluster of many shapes keeps the most recently used.
COLUMN_LIMIT = 64


_REBUILD_AFTER = 32  # positions filled at once, beyond which the missing set is rebuilt


class _Column:
    __slots__ = ("missing", "values")

    def __init__(self, size: int) -> None:
        self.values: list[Any] = [None] * size
        self.missing: set[int] = set(range(size))  # positions whose value is not known


class NodeColumns:
    """Columns of per-node values, one entry per position of the snapshot's visiting order,
    each with the set of positions whose value is not (or no longer) known."""

    def __init__(self, size: int = 0, limit: int = COLUMN_LIMIT) -> None:
        self._size = size
        self._limit = limit
        self._columns: dict[Hashable, _Column] = {}

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._columns)

    def reset(self, size: int) -> None:
        """The order changed: every position means another node now."""
        self._size = size
        self._columns.clear()

    def forget(self, positions: Iterable[int]) -> None:
        """The nodes at `positions` changed: their values must be computed again."""
        columns = self._columns.values()
        for position in positions:
            for column in columns:
                column.values[position] = None
                column.missing.add(position)

    def column(self, key: Hashable) -> _Column:
        column = self._columns.pop(key, None)
        if column is None:
            column = _Column(self._size)
            if len(self._columns) >= self._limit:
                del self._columns[next(iter(self._columns))]  # the least recently used
        self._columns[key] = column  # (re)inserted last: most recently used
        return column


class NodeWindow(list["NodeInfo"]):
    """Nodes of the snapshot's visiting order with their positions in it, as a filter chunk or
    the feasible nodes of a cycle: consecutive from `start` (wrapping round at the end), or, when
    filters rejected some, at `positions`. Plugins that see a window read their per-node values
    from columns by position; anything else treats it as the list it is."""

    __slots__ = ("columns", "positions", "start")

    def __init__(
        self,
        nodes: Iterable[NodeInfo],
        columns: NodeColumns,
        start: int,
        positions: list[int] | None = None,
    ) -> None:
        super().__init__(nodes)
        self.columns = columns
        self.start = start
        self.positions = positions

    def values(self, key: Hashable, compute: Callable[[list[NodeInfo]], list[T]]) -> list[T]:
        """The column `key`'s values for this window's nodes, in order (a new list the caller
        may change); `compute` is called once with the nodes whose value is not known, and must
        return one value for each, never None."""
        column = self.columns.column(key)
        stored = column.values
        missing = column.missing
        positions = self.positions
        if positions is not None:
            values: list[Any] = list(map(stored.__getitem__, positions))
            if missing and None in values:
                offsets = [offset for offset, value in enumerate(values) if value is None]
                self._fill(column, values, offsets, [positions[i] for i in offsets], compute)
            return values
        size = len(stored)
        start = self.start
        count = len(self)
        end = start + count
        values = stored[start:end] if end <= size else stored[start:] + stored[: end - size]
        if missing:
            if len(missing) < count:  # the usual: a node or two changed since the last cycle
                offsets = sorted(offset for offset in ((p - start) % size for p in missing) if offset < count)
            else:  # a new column: most values are still missing
                offsets = [offset for offset, value in enumerate(values) if value is None]
            if offsets:
                self._fill(column, values, offsets, [(start + i) % size for i in offsets], compute)
        return values

    def _fill(
        self,
        column: _Column,
        values: list[Any],
        offsets: list[int],
        positions: list[int],
        compute: Callable[[list[NodeInfo]], list[T]],
    ) -> None:
        computed = compute([self[i] for i in offsets])
        stored = column.values
        for offset, position, value in zip(offsets, positions, computed, strict=True):
            values[offset] = value
            stored[position] = value
        missing = column.missing
        missing.difference_update(positions)
        if not missing or len(positions) > _REBUILD_AFTER:
            # A set's table never shrinks, and iterating it walks the whole table: one that held
            # every position would cost a pass over 5,000 slots per cycle for the few left.
            column.missing = set(missing)
