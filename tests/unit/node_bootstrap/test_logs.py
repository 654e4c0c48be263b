"""Container log buffers and the kubelet's log options."""

from __future__ import annotations

import asyncio

import pytest

from node_bootstrap.agent.logs import LogBuffer, LogOptions, LogStore, parse_log_options, select_lines, stream

T0 = 1_780_000_000.0


def filled(n: int = 5) -> LogBuffer:
    buffer = LogBuffer(100)
    for i in range(n):
        buffer.append(T0 + i, f"line {i}")
    return buffer


async def collect(buffer: LogBuffer, options: LogOptions, now: float = T0 + 10) -> bytes:
    return b"".join([chunk async for chunk in stream(buffer, options, now, asyncio.Event())])


def test_options_parse_and_validate() -> None:
    opts = parse_log_options({"follow": "true", "tailLines": "3", "timestamps": "1", "limitBytes": "10"})
    assert opts == LogOptions(follow=True, timestamps=True, tail_lines=3, limit_bytes=10)
    assert parse_log_options({"tail": "all"}).tail_lines is None
    assert parse_log_options({"sinceTime": "2026-05-28T20:26:42Z"}).since_time == T0 + 2
    for bad in ({"tailLines": "-1"}, {"limitBytes": "0"}, {"sinceSeconds": "0"}, {"follow": "perhaps"}):
        with pytest.raises(ValueError):
            parse_log_options(bad)
    with pytest.raises(ValueError):
        parse_log_options({"sinceSeconds": "5", "sinceTime": "2026-05-28T20:26:42Z"})


def test_tail_and_since() -> None:
    buffer = filled()
    assert [line.text for line in select_lines(buffer, LogOptions(tail_lines=2), T0)] == [
        "2026-05-28T20:26:43Z line 3",
        "2026-05-28T20:26:44Z line 4",
    ]
    assert len(select_lines(buffer, LogOptions(tail_lines=0), T0)) == 0
    assert len(select_lines(buffer, LogOptions(since_seconds=2), T0 + 4)) == 3


async def test_timestamps_and_limit_bytes() -> None:
    buffer = LogBuffer(10)
    buffer.append(T0 + 0.5, "hello")
    out = await collect(buffer, LogOptions(timestamps=True))
    assert out == b"2026-05-28T20:26:40.5Z 2026-05-28T20:26:40Z hello\n"
    assert await collect(filled(), LogOptions(limit_bytes=30)) == b"2026-05-28T20:26:40Z line 0\n20"


async def test_follow_streams_until_the_run_ends() -> None:
    buffer = filled(1)
    received: list[bytes] = []

    async def follower() -> None:
        async for chunk in stream(buffer, LogOptions(follow=True), T0, asyncio.Event()):
            received.append(chunk)

    task = asyncio.create_task(follower())
    await asyncio.sleep(0.01)
    buffer.append(T0 + 1, "more")
    await asyncio.sleep(0.01)
    assert received == [b"2026-05-28T20:26:40Z line 0\n", b"2026-05-28T20:26:41Z more\n"]
    buffer.close()
    await asyncio.wait_for(task, 1)


def test_store_keeps_current_and_previous_run() -> None:
    store = LogStore(max_lines=3)
    pod = store.register("ns", "p", "uid-1", ("web",))
    pod.buffer("web").append(T0, "first run")
    pod.new_run("web").append(T0 + 1, "second run")
    entry = pod.containers["web"]
    assert entry.previous is not None and entry.previous.closed
    assert [line.text for line in entry.previous.lines()] == ["2026-05-28T20:26:40Z first run"]
    for i in range(5):
        pod.buffer("web").append(T0 + i, f"{i}")
    assert len(pod.buffer("web").lines()) == 3  # bounded
    # A new pod with the same name (another uid) replaces the old one's logs.
    assert store.register("ns", "p", "uid-2", ("web",)) is not pod
    store.remove("ns", "p", "uid-1")
    assert store.get("ns", "p") is not None
    store.remove("ns", "p", "uid-2")
    assert store.get("ns", "p") is None
