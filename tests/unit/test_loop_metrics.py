"""The lock-free metrics expose exactly what prometheus_client's own would, for any updates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from controlplane.loop_metrics import LoopCounter, LoopGauge, LoopHistogram

BUCKETS = (0.005, 0.01, 0.25, 1.0, 10.0)
_labels = st.sampled_from(["a", "b", 'q"uote'])


def _exposition(registry: CollectorRegistry) -> list[str]:
    """The scrape, less the `_created` series (histograms here have none; their values are times)."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


@settings(deadline=None, max_examples=200)
@given(
    observations=st.lists(
        st.tuples(_labels, st.one_of(st.sampled_from([0.0, *BUCKETS]), st.floats(0, 100))), max_size=30
    )
)
def test_histograms_expose_what_prometheus_client_does(observations: list[tuple[str, float]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("h_seconds", "help text", ["kind"], buckets=BUCKETS, registry=ours)
    reference = Histogram("h_seconds", "help text", ["kind"], buckets=BUCKETS, registry=theirs)
    for label, value in observations:
        loop.labels(kind=label).observe(value)
        reference.labels(kind=label).observe(value)
    assert _exposition(ours) == _exposition(theirs)


@settings(deadline=None, max_examples=200)
@given(
    updates=st.lists(
        st.tuples(_labels, st.sampled_from(["inc", "set", "dec"]), st.integers(0, 5)), max_size=30
    )
)
def test_counters_and_gauges_expose_what_prometheus_client_does(updates: list[tuple[str, str, int]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = LoopCounter("requests_total", "help", ["code"], registry=ours)
    gauge = LoopGauge("inflight", "help", ["code"], registry=ours)
    ref_counter = Counter("requests_total", "help", ["code"], registry=theirs)
    ref_gauge = Gauge("inflight", "help", ["code"], registry=theirs)
    for label, op, amount in updates:
        counter.labels(label).inc(amount)
        ref_counter.labels(label).inc(amount)
        getattr(gauge.labels(code=label), op)(amount)
        getattr(ref_gauge.labels(code=label), op)(amount)
    assert _exposition(ours) == _exposition(theirs)
    # counters keep their _created series, as prometheus_client's do
    for label, *_ in updates:
        assert ours.get_sample_value("requests_created", {"code": label}) is not None


def test_labels_are_checked_and_children_kept() -> None:
    registry = CollectorRegistry()
    counter = LoopCounter("c_total", "help", ["a", "b"], registry=registry)
    assert counter.labels("x", "y") is counter.labels(a="x", b="y")
    with pytest.raises(ValueError, match="labels must be exactly"):
        counter.labels("x")
    with pytest.raises(ValueError, match="labels must be exactly"):
        counter.labels(a="x", c="y")
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("x", "y").inc(-1)
    with pytest.raises(ValueError, match="increasing"):
        LoopHistogram("h", "help", [], buckets=(1.0, 0.5), registry=None)
    # the registry refuses a second metric of the same name, as for prometheus_client's own
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        LoopCounter("c_total", "help", ["a", "b"], registry=registry)
