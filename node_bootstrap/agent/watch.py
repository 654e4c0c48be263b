"""List, then watch from the list's revision; relist on 410 or a broken stream.

A relist reports what vanished while the agent was not watching as deletions, so a pod deleted
during a disconnect still has its worker stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from controlplane.client import ResourcePath
from node_bootstrap.agent.clock import Clock
from node_bootstrap.agent.kube import Api, is_expired

__all__ = ["Reflector"]

log = logging.getLogger("pinnace.nodeagent.watch")

Obj = dict[str, Any]
LIST_PAGE = 500


def _strip_managed_fields(obj: Obj) -> None:
    """Nothing here reads managedFields, and with many simulated nodes in one process they
    would be about half of the memory of every pod held."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


class Reflector:
    def __init__(
        self,
        api: Api,
        rp: ResourcePath,
        *,
        params: Mapping[str, str],
        on_upsert: Callable[[Obj], None],
        on_delete: Callable[[Obj], None],
        clock: Clock,
        watch_timeout: int = 300,
    ) -> None:
        self._api = api
        self._rp = rp
        self._params = dict(params)
        self._on_upsert = on_upsert
        self._on_delete = on_delete
        self._clock = clock
        self._watch_timeout = watch_timeout
        self._known: dict[str, Obj] = {}
        self.resource_version = ""
        self.lists = 0  # how often it listed, for tests and logs
        self.synced = asyncio.Event()  # set after the first list was delivered

    async def run(self) -> None:
        """Until cancelled."""
        backoff = 0.2
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._watch()
                backoff = 0.2
            except _Expired:
                need_list = True
            except Exception as exc:
                # Anything else (a dropped connection, a server restarting, a bad event) is
                # retried from a fresh list; the relist tells handlers what they missed.
                if is_expired(exc):
                    need_list = True
                    continue
                log.warning("%s list/watch failed (%s); retrying in %.1fs", self._rp.plural, exc, backoff)
                await self._clock.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                need_list = True

    async def _relist(self) -> None:
        items: list[Obj] = []
        params = {**self._params, "limit": str(LIST_PAGE)}
        while True:
            page = await self._api.list(self._rp, params=params)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            params = {**self._params, "limit": str(LIST_PAGE), "continue": token}
        self.resource_version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        self.lists += 1
        seen: set[str] = set()
        for obj in items:
            _strip_managed_fields(obj)
            key = _key(obj)
            seen.add(key)
            self._known[key] = obj
            self._dispatch(self._on_upsert, obj)
        for key in [k for k in self._known if k not in seen]:
            self._dispatch(self._on_delete, self._known.pop(key))
        self.synced.set()

    async def _watch(self) -> None:
        params = {
            **self._params,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self._watch_timeout),
        }
        async for event in self._api.watch(self._rp, params=params):
            kind = str(event.get("type", ""))
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise _Expired(str(obj.get("message", "")))
                raise ValueError(f"watch error: {obj.get('message', obj)}")
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            if rv:
                self.resource_version = rv
            if kind == "BOOKMARK":
                continue
            _strip_managed_fields(obj)
            key = _key(obj)
            if kind == "DELETED":
                self._known.pop(key, None)
                self._dispatch(self._on_delete, obj)
            elif kind in ("ADDED", "MODIFIED"):
                self._known[key] = obj
                self._dispatch(self._on_upsert, obj)

    def _dispatch(self, handler: Callable[[Obj], None], obj: Obj) -> None:
        try:
            handler(obj)
        except Exception:
            log.exception("%s handler failed", self._rp.plural)


class _Expired(Exception):
    """A watch ERROR event with code 410: the revision was compacted; relist."""
