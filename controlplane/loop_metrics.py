"""Counters, gauges and histograms for the per-request path, updated from the event loop's thread
without locks and exposed on prometheus_client's registry under the same names, labels and
samples as prometheus_client's own (less the `_created` series of histograms).

prometheus_client guards every value with a lock and observes a histogram with a Python loop
over its buckets. A request here makes about eight updates (counted, timed, in flight, its
storage calls timed, its user counted), and they were ~9 % of the server's CPU per pod create
and binding (bench/ab_create_bind.py with them off). Here a counter or gauge child is one float
and a histogram child a list of per-bucket counts found by `bisect`, turned cumulative only when
scraped.

Only the event loop's thread may update these (a `+=` from two threads can lose an increment);
metrics updated from other threads stay prometheus_client's.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

__all__ = ["LoopCounter", "LoopGauge", "LoopHistogram"]


class _CounterChild:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount


class _GaugeChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds  # finite upper bounds; counts has one more slot, for +Inf
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.sum += amount
        # The first bound >= amount: buckets are `le` (less than or equal).
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1


_Child = TypeVar("_Child", _CounterChild, _GaugeChild, _HistogramChild)


class _Metric(ABC, Generic[_Child]):
    """A labelled family; `labels(...)` makes a child on first use and returns the same one after."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _Child] = {}
        if registry is not None:
            registry.register(self)

    @abstractmethod
    def _new_child(self) -> _Child: ...

    def labels(self, *values: object, **by_name: object) -> _Child:
        if by_name:
            if values or set(by_name) != set(self.labelnames):
                raise ValueError(f"{self.name}: labels must be exactly {self.labelnames}")
            key = tuple(str(by_name[n]) for n in self.labelnames)
        else:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: labels must be exactly {self.labelnames}")
            key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child()
        return child

    @abstractmethod
    def _family(self) -> Metric: ...

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for key, child in list(self._children.items()):
            self._add(family, list(key), child)
        yield family

    @abstractmethod
    def _add(self, family: Metric, labels: list[str], child: _Child) -> None: ...


class LoopCounter(_Metric[_CounterChild]):
    """Exposed as prometheus_client's Counter: `<name>_total` (the suffix added when missing) and
    `<name>_created`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def _new_child(self) -> _CounterChild:
        return _CounterChild()

    def _family(self) -> Metric:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: Metric, labels: list[str], child: _CounterChild) -> None:
        assert isinstance(family, CounterMetricFamily)
        family.add_metric(labels, child.value, created=child.created)


class LoopGauge(_Metric[_GaugeChild]):
    def _new_child(self) -> _GaugeChild:
        return _GaugeChild()

    def _family(self) -> Metric:
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: Metric, labels: list[str], child: _GaugeChild) -> None:
        assert isinstance(family, GaugeMetricFamily)
        family.add_metric(labels, child.value)


class LoopHistogram(_Metric[_HistogramChild]):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be increasing")
        self.bounds = bounds
        self._les = [*(floatToGoString(b) for b in bounds), "+Inf"]  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> _HistogramChild:
        return _HistogramChild(self.bounds)

    def _family(self) -> Metric:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: Metric, labels: list[str], child: _HistogramChild) -> None:
        assert isinstance(family, HistogramMetricFamily)
        cumulative = list(itertools.accumulate(child.counts))
        family.add_metric(labels, list(zip(self._les, cumulative, strict=True)), child.sum)
