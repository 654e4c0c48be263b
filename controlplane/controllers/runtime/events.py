"""Events, recorded as client-go's recorder does: fire-and-forget, written in the background,
repeats of the same event folded into one object whose `count` and `lastTimestamp` move.

Names follow upstream (`<object name>.<hex nanoseconds>`); cluster-scoped objects' events go to the
`default` namespace. A write that fails is logged and dropped: events are best effort, and a
controller must never block or fail on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import resources as R
from controlplane.controllers.runtime.clock import Clock, RealClock, rfc3339

__all__ = ["EventBroadcaster", "EventRecorder"]

log = logging.getLogger("pinnace.events")

_CACHE_SIZE = 4096


class EventBroadcaster:
    """Owns the write queue shared by every recorder in the process."""

    def __init__(self, client: Client, *, clock: Clock | None = None, host: str = "") -> None:
        self._client = client
        self._clock = clock or RealClock()
        self._host = host
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        # (component, namespace, involved uid/name, type, reason, message) -> (event name, count)
        self._seen: OrderedDict[tuple[str, ...], tuple[str, int]] = OrderedDict()
        self.dropped = 0
        self._last_stamp = 0

    def recorder(self, component: str) -> EventRecorder:
        return EventRecorder(self, component)

    def _submit(self, item: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            getter = asyncio.ensure_future(self._queue.get())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if getter not in done:
                getter.cancel()
                return
            with contextlib.suppress(errors.StatusError, OSError):
                await self._write(getter.result())

    async def flush(self) -> None:
        """Write everything queued now (tests, shutdown)."""
        while not self._queue.empty():
            with contextlib.suppress(errors.StatusError, OSError):
                await self._write(self._queue.get_nowait())

    async def _write(self, item: dict[str, Any]) -> None:
        now = rfc3339(self._clock.now())
        key = item.pop("_key")
        namespace = item["metadata"]["namespace"]
        found = self._seen.get(key)
        if found is not None:
            name, count = found
            patch = {"count": count + 1, "lastTimestamp": now}
            try:
                await self._client.patch(R.EVENTS, name, patch, namespace)
                self._seen[key] = (name, count + 1)
                self._seen.move_to_end(key)
                return
            except errors.NotFound:
                self._seen.pop(key, None)  # compacted away or deleted: write a fresh one
        item["firstTimestamp"] = item["lastTimestamp"] = now
        item["eventTime"] = None
        item["metadata"]["name"] = (
            f"{item['involvedObject']['name']}.{self._clock.now().timestamp() * 1e9:.0f}"
        )
        item["metadata"]["name"] = item["metadata"]["name"][:253]
        try:
            await self._client.create(R.EVENTS, item, namespace)
        except errors.StatusError as exc:
            log.debug("event %s/%s not written: %s", namespace, item["reason"], exc)
            return
        self._seen[key] = (item["metadata"]["name"], 1)
        if len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)


class EventRecorder:
    def __init__(self, broadcaster: EventBroadcaster, component: str) -> None:
        self._b = broadcaster
        self.component = component

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
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
        key = (self.component, namespace, str(meta.get("uid") or meta.get("name")), type_, reason, message)
        self._b._submit(
            {
                "_key": key,
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"namespace": namespace},
                "involvedObject": involved,
                "reason": reason,
                "message": message[:1024],
                "type": type_,
                "count": 1,
                "source": {"component": self.component, **({"host": self._b._host} if self._b._host else {})},
                "reportingComponent": self.component,
                "reportingInstance": self._b._host or self.component,
            }
        )
