"""Container logs: what the simulation did, one buffer per container run.

A container's current run and the run before it are kept (that is all `previous=true` can ask
for); each buffer is bounded. Followers wait on the buffer and stop when its run ends. Option
handling mirrors the kubelet's: sinceSeconds/sinceTime filter first, then tailLines, then
limitBytes caps the bytes written, and `timestamps` prefixes each line with RFC3339Nano.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from node_bootstrap.agent.clock import format_nano_time, format_time, parse_time

__all__ = ["ContainerLog", "LogBuffer", "LogOptions", "LogStore", "PodLogs", "parse_log_options"]


@dataclass(frozen=True)
class LogLine:
    seq: int
    at: float
    text: str


class LogBuffer:
    """The lines of one container run. `closed` once the run has ended."""

    def __init__(self, max_lines: int) -> None:
        self._lines: deque[LogLine] = deque(maxlen=max_lines)
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self.closed = False

    def append(self, at: float, message: str) -> None:
        # The line reads like an application's own log: its time, then what happened.
        self._lines.append(LogLine(next(self._seq), at, f"{format_time(at)} {message}"))
        self._wake()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def lines(self) -> list[LogLine]:
        return list(self._lines)

    def after(self, seq: int) -> list[LogLine]:
        return [line for line in self._lines if line.seq > seq]

    async def wait_change(self) -> None:
        await self._changed.wait()


@dataclass
class ContainerLog:
    current: LogBuffer | None = None
    previous: LogBuffer | None = None


@dataclass
class PodLogs:
    uid: str
    container_names: tuple[str, ...]
    max_lines: int
    containers: dict[str, ContainerLog] = field(default_factory=dict)

    def buffer(self, container: str) -> LogBuffer:
        """The current run's buffer, created on first use."""
        entry = self.containers.setdefault(container, ContainerLog())
        if entry.current is None:
            entry.current = LogBuffer(self.max_lines)
        return entry.current

    def new_run(self, container: str) -> LogBuffer:
        """A restart: the current buffer becomes the previous one."""
        entry = self.containers.setdefault(container, ContainerLog())
        if entry.current is not None:
            entry.current.close()
            entry.previous = entry.current
        entry.current = LogBuffer(self.max_lines)
        return entry.current

    def close_all(self) -> None:
        for entry in self.containers.values():
            if entry.current is not None:
                entry.current.close()


class LogStore:
    """Every simulated pod's logs in the process, by namespace and name (the kubelet URL's keys)."""

    def __init__(self, max_lines: int = 1000) -> None:
        self._pods: dict[tuple[str, str], PodLogs] = {}
        self._max_lines = max_lines

    def register(self, namespace: str, name: str, uid: str, containers: tuple[str, ...]) -> PodLogs:
        existing = self._pods.get((namespace, name))
        if existing is not None and existing.uid == uid:
            return existing
        if existing is not None:
            existing.close_all()
        logs = PodLogs(uid, containers, self._max_lines)
        self._pods[(namespace, name)] = logs
        return logs

    def remove(self, namespace: str, name: str, uid: str) -> None:
        existing = self._pods.get((namespace, name))
        if existing is not None and existing.uid == uid:
            existing.close_all()
            del self._pods[(namespace, name)]

    def get(self, namespace: str, name: str) -> PodLogs | None:
        return self._pods.get((namespace, name))

    def close_all(self) -> None:
        for logs in self._pods.values():
            logs.close_all()


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: float | None = None
    limit_bytes: int | None = None


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "t"):
        return True
    if lowered in ("false", "0", "f", ""):
        return False
    raise ValueError(value)


def parse_log_options(query: dict[str, str]) -> LogOptions:
    """v1.PodLogOptions from the query; ValueError for what the kubelet refuses."""

    def integer(key: str) -> int | None:
        return int(query[key]) if query.get(key) not in (None, "") else None

    tail = query.get("tailLines")
    if tail is None and "tail" in query:  # the kubelet still reads the old name
        tail = None if query["tail"] == "all" else query["tail"]
    options = LogOptions(
        follow=_bool(query.get("follow", "")),
        previous=_bool(query.get("previous", "")),
        timestamps=_bool(query.get("timestamps", "")),
        tail_lines=int(tail) if tail not in (None, "") else None,
        since_seconds=integer("sinceSeconds"),
        since_time=parse_time(query["sinceTime"]) if query.get("sinceTime") else None,
        limit_bytes=integer("limitBytes"),
    )
    if query.get("sinceTime") and options.since_time is None:
        raise ValueError("sinceTime")
    # ValidatePodLogOptions
    if options.tail_lines is not None and options.tail_lines < 0:
        raise ValueError("tailLines")
    if options.limit_bytes is not None and options.limit_bytes < 1:
        raise ValueError("limitBytes")
    if options.since_seconds is not None and options.since_seconds < 1:
        raise ValueError("sinceSeconds")
    if options.since_seconds is not None and options.since_time is not None:
        raise ValueError("sinceSeconds and sinceTime")
    return options


def _render(line: LogLine, timestamps: bool) -> bytes:
    text = f"{format_nano_time(line.at)} {line.text}\n" if timestamps else f"{line.text}\n"
    return text.encode()


def select_lines(buffer: LogBuffer, options: LogOptions, now: float) -> list[LogLine]:
    lines = buffer.lines()
    since = options.since_time
    if options.since_seconds is not None:
        since = now - options.since_seconds
    if since is not None:
        lines = [line for line in lines if line.at >= since]
    if options.tail_lines is not None:
        lines = lines[len(lines) - options.tail_lines :] if options.tail_lines else []
    return lines


async def stream(
    buffer: LogBuffer, options: LogOptions, now: float, stop: asyncio.Event
) -> AsyncIterator[bytes]:
    """The bytes to send: the selected lines, then (with follow) new lines until the run ends,
    `stop` is set or limitBytes is reached."""
    budget = options.limit_bytes
    selected = select_lines(buffer, options, now)
    last = selected[-1].seq if selected else max((line.seq for line in buffer.lines()), default=-1)
    pending = selected
    while True:
        for line in pending:
            data = _render(line, options.timestamps)
            if budget is not None:
                if budget <= 0:
                    return
                data = data[:budget]
                budget -= len(data)
            yield data
            last = line.seq
        if budget is not None and budget <= 0:
            return
        if not options.follow or buffer.closed or stop.is_set():
            return
        waiter = asyncio.ensure_future(buffer.wait_change())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stopper.cancel()
        pending = buffer.after(last)
        if buffer.closed and not pending:
            return
