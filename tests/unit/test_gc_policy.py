"""The collector settings of long-running commands."""

from __future__ import annotations

import argparse
import gc
import weakref
from collections.abc import Iterator

import pytest

from controlplane import __main__ as cli
from controlplane import gc_policy


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_tune_sets_the_thresholds() -> None:
    gc_policy.tune()
    assert gc.get_threshold() == gc_policy.THRESHOLDS


@pytest.mark.usefixtures("restored_gc")
def test_freeze_startup_exempts_what_is_alive_and_collects_what_is_not() -> None:
    class Cycle:
        me: object

    garbage, alive = Cycle(), Cycle()
    garbage.me = garbage
    gone = weakref.ref(garbage)
    del garbage
    gc_policy.freeze_startup()
    assert gone() is None  # collected, not frozen for ever
    assert gc.get_freeze_count() > 0
    assert alive not in gc.get_objects()  # frozen objects are no collection's concern


def test_long_running_commands_are_real_subcommands() -> None:
    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) >= cli._LONG_RUNNING
    assert {"server", "node-agent", "scheduler", "controller-manager"} <= cli._LONG_RUNNING
