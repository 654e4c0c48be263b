"""Events, recorded as client-go's recorder (tools/record/event.go) does: fire-and-forget, written
in the background by one task, each event run through the EventCorrelator first (spam filter,
aggregation of similar events, repeats folded into one object whose `count`, `lastTimestamp` and
`message` move by PATCH).

Names follow upstream (`<object name>.<hex nanoseconds>`); cluster-scoped objects' events go to the
`default` namespace. Events are best effort and a controller must never block or fail on them: a
full queue drops the event, the server rejecting one abandons it, and only a transport failure is
retried (12 tries, 10 s apart, the first wait randomised).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import Any

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import resources as R
from controlplane.controllers.runtime.clock import Clock, RealClock, rfc3339
from controlplane.controllers.runtime.event_correlator import EventCorrelator, EventNamer

__all__ = ["EventBroadcaster", "EventRecorder"]

log = logging.getLogger("pinnace.events")

# upstream's maxQueuedEvents: past it, events are dropped rather than queued
MAX_QUEUED_EVENTS = 1000
MAX_TRIES_PER_EVENT = 12
RETRY_SLEEP_SECONDS = 10.0
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
NAMESPACE_TERMINATING_CAUSE = "NamespaceTerminating"  # v1.NamespaceTerminatingCause


class EventBroadcaster:
    """Owns the write queue shared by every recorder in the process, and the correlator."""

    def __init__(self, client: Client, *, clock: Clock | None = None, host: str = "") -> None:
        self._client = client
        self._clock = clock or RealClock()
        self._host = host
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=MAX_QUEUED_EVENTS)
        self._namer = EventNamer()
        self.correlator = EventCorrelator(self._clock, namer=self._namer)
        self.retry_sleep = RETRY_SLEEP_SECONDS
        self.dropped = 0  # the queue was full
        self.spam_filtered = 0  # the correlator's spam filter dropped it
        self.abandoned = 0  # the server rejected it, or retries ran out

    def recorder(self, component: str) -> EventRecorder:
        return EventRecorder(self, component)

    def _submit(self, item: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("too many queued events, dropping (%d dropped so far)", self.dropped)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            getter = asyncio.ensure_future(self._queue.get())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if getter not in done:
                getter.cancel()
                return
            await self._record_to_sink(getter.result(), stop)

    async def flush(self) -> None:
        """Write everything queued now (tests, shutdown): one try each, as upstream does once shut down."""
        while not self._queue.empty():
            await self._record_to_sink(self._queue.get_nowait(), None)

    async def _record_to_sink(self, event: dict[str, Any], stop: asyncio.Event | None) -> None:
        """recordToSink: correlate, then write with retries while the server cannot be reached."""
        result = self.correlator.correlate(event)
        if result.skip or result.event is None:
            self.spam_filtered += 1
            log.debug(
                "event %s/%s %s dropped by the spam filter",
                event["metadata"]["namespace"],
                event["involvedObject"].get("name", ""),
                event["reason"],
            )
            return
        tries = 0
        while not await self._record_event(result.event, result.patch):
            tries += 1
            if stop is None or tries >= MAX_TRIES_PER_EVENT:
                self.abandoned += 1
                log.error("unable to write event %s (retry limit exceeded)", _describe(result.event))
                return
            # Randomise the first sleep so clients do not retry in step after an outage.
            delay = self.retry_sleep * (random.random() if tries == 1 else 1.0)
            if await _sleep_or_stop(self._clock, delay, stop):
                self.abandoned += 1
                log.error("unable to write event %s (broadcaster is shut down)", _describe(result.event))
                return

    async def _record_event(self, event: dict[str, Any], patch: dict[str, Any] | None) -> bool:
        """recordEvent: True when written or abandoned, False when worth retrying."""
        namespace = event["metadata"]["namespace"]
        written: Any = None
        try:
            if patch is not None and int(event.get("count") or 0) > 1:
                try:
                    written = await self._client.patch(
                        R.EVENTS,
                        event["metadata"]["name"],
                        patch,
                        namespace,
                        patch_type=STRATEGIC_MERGE_PATCH,
                    )
                except errors.NotFound:
                    written = None  # compacted away or deleted: create it again, same name and count
            if written is None:
                body = {**event, "metadata": {**event["metadata"]}}
                body["metadata"].pop("resourceVersion", None)
                written = await self._client.create(R.EVENTS, body, namespace)
        except errors.StatusError as exc:
            self.abandoned += 1
            quiet = isinstance(exc, errors.AlreadyExists) or any(
                c.reason == NAMESPACE_TERMINATING_CAUSE for c in exc.causes
            )
            (log.debug if quiet else log.warning)(
                "server rejected event %s (will not retry): %s", _describe(event), exc
            )
            return True
        except Exception as exc:
            # Transport errors and anything else unexpected: upstream retries these.
            log.warning("unable to write event %s (may retry): %r", _describe(event), exc)
            return False
        self.correlator.update_state(written if isinstance(written, dict) and written else event)
        return True


async def _sleep_or_stop(clock: Clock, seconds: float, stop: asyncio.Event) -> bool:
    """Sleep on the clock; True when `stop` was set first."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    done, pending = await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return stopper in done


def _describe(event: Mapping[str, Any]) -> str:
    involved = event.get("involvedObject") or {}
    return f"{event['metadata']['namespace']}/{involved.get('name', '')} {event.get('reason', '')}"


class EventRecorder:
    def __init__(self, broadcaster: EventBroadcaster, component: str) -> None:
        self._b = broadcaster
        self.component = component

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """makeEvent + generateEvent: stamped now (name, first and last timestamps), queued or dropped."""
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        involved = {
            "kind": obj.get("kind", ""),
            "namespace": meta.get("namespace", ""),
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "apiVersion": obj.get("apiVersion", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        involved = {k: v for k, v in involved.items() if v}
        now = self._b._clock.now()
        stamp = rfc3339(now)
        host = self._b._host
        self._b._submit(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": self._b._namer.name(str(meta.get("name") or ""), now),
                    "namespace": namespace,
                },
                "involvedObject": involved,
                "reason": reason,
                "message": message[:1024],
                "type": type_,
                "count": 1,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "eventTime": None,
                "source": {"component": self.component, **({"host": host} if host else {})},
                "reportingComponent": self.component,
                **({"reportingInstance": host} if host else {}),
            }
        )
