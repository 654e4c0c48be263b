"""The cyclic garbage collector's settings for Pinnace's long-running processes.

Reference counting frees almost everything these processes drop (decoded JSON is trees, not
cycles); the cyclic collector only finds the rare cycle, yet with CPython's defaults
(700, 10, 10) it ran a full collection every few seconds in `pinnace server` at 1,000 nodes:
each one walks every live container (the informers', the scheduler's and the storage's
objects: millions at 30,000 pods) and took up to 0.9 s at 6,000 pods, 88 of them in six
minutes finding ~100 objects each, while objects that live a second (an event being fanned
out, a request in flight) were promoted into the oldest generation fast enough to keep
triggering them. Measured with bench/bench_density.py (1,000 nodes, 6,000 pods; see
docs/performance.md): server CPU per pod 57.8 -> 44.6 ms, probe mutating p99 865 -> 174 ms.

A larger first threshold lets such objects die young; the larger second and third make full
collections rare (each still waits, as always, until a quarter of the oldest generation is
new). Objects alive once start-up is over are frozen: they live as long as the process, so
no collection need walk them again.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "freeze_startup", "tune"]

THRESHOLDS = (50_000, 20, 100)


def tune() -> None:
    """Set the thresholds; call once, early, in a long-running command."""
    gc.set_threshold(*THRESHOLDS)


def freeze_startup() -> None:
    """Collect what start-up left behind, then exempt everything still alive from collection."""
    gc.collect()
    gc.freeze()
