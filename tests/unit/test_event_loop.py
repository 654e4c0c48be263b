"""The event loop choice of long-running commands."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from controlplane import event_loop


@pytest.fixture(autouse=True)
def stdlib_policy_after() -> Iterator[None]:
    yield
    asyncio.set_event_loop_policy(None)


def _loop_type() -> type:
    async def which() -> type:
        return type(asyncio.get_running_loop())

    return asyncio.run(which())


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.ENV, raising=False)
    assert event_loop.install() == "uvloop"
    assert issubclass(_loop_type(), uvloop.Loop)


def test_stdlib_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV, "asyncio")
    assert event_loop.install() == "asyncio"
    assert not issubclass(_loop_type(), uvloop.Loop)


def test_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="PINNACE_EVENT_LOOP must be one of uvloop, asyncio"):
        event_loop.install("trio")
