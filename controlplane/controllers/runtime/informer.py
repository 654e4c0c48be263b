"""Shared informers: list, then watch from the list's revision, keeping a cache and indexes.

One informer per resource serves every controller in the process (the factory shares them), so a
thousand pods are listed and watched once, not once per controller. The watch resumes from the
last resourceVersion it saw (bookmarks keep that fresh on quiet resources); a 410 Expired (or any
broken stream that cannot resume) falls back to a relist, whose differences from the cache are
delivered as synthetic ADDED/MODIFIED/DELETED events, so handlers never miss a transition and a
deletion that happened while disconnected still reaches them.

Cached objects are shared with every handler: they are read-only by contract. They are cached
without metadata.managedFields (upstream's informer transform).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from controlplane.api import errors
from controlplane.client import Client, ResourcePath
from controlplane.controllers.runtime.clock import Clock, RealClock
from controlplane.controllers.runtime.keys import key_of

__all__ = ["EventHandler", "IndexFunc", "Informer", "InformerFactory"]

log = logging.getLogger("pinnace.informer")

Obj = dict[str, Any]
# Aliases: inside Informer, `list` names the method.
ObjList = list[Obj]
KeyList = list[str]
EventHandler = Callable[[str, Obj | None, Obj | None], None]
IndexFunc = Callable[[Obj], Iterable[str]]

LIST_PAGE = 500


def _strip_managed_fields(obj: Obj) -> None:
    """Drop metadata.managedFields before caching, as kube-controller-manager's shared
    informers do (their `trim` transform): no controller reads them, and they are about half
    of a pod's size in memory, for every pod in every informer of the process."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)


def _version(obj: Obj) -> object:
    return (obj.get("metadata") or {}).get("resourceVersion")


def _by_namespace(obj: Obj) -> Iterable[str]:
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


def _by_owner(obj: Obj) -> Iterable[str]:
    return [str(ref.get("uid", "")) for ref in (obj.get("metadata") or {}).get("ownerReferences") or []]


def _by_node(obj: Obj) -> Iterable[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [str(node)] if node else []


class Informer:
    def __init__(
        self,
        client: Client,
        rp: ResourcePath,
        *,
        clock: Clock | None = None,
        watch_timeout: int = 300,
        params: dict[str, str] | None = None,
    ) -> None:
        self.rp = rp
        self._client = client
        self._clock = clock or RealClock()
        self._watch_timeout = watch_timeout
        self._params = dict(params or {})
        self._items: dict[str, Obj] = {}
        self._handlers: list[EventHandler] = []
        self._indexers: dict[str, IndexFunc] = {
            "namespace": _by_namespace,
            "owner": _by_owner,
            "node": _by_node,
        }
        self._indexes: dict[str, defaultdict[str, set[str]]] = {
            name: defaultdict(set) for name in self._indexers
        }
        self._synced = asyncio.Event()
        self.resource_version = ""

    # -- reading the cache -------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self, namespace: str | None = None) -> ObjList:
        if namespace is None:
            return list(self._items.values())
        return self.by_index("namespace", namespace)

    def keys(self) -> KeyList:
        return list(self._items)

    def by_index(self, name: str, value: str) -> ObjList:
        return [self._items[k] for k in self._indexes[name].get(value, ()) if k in self._items]

    def __len__(self) -> int:
        return len(self._items)

    # -- registering -------------------------------------------------------------------------

    def add_handler(self, handler: EventHandler) -> None:
        """Called for every change; once synced, a late handler first sees ADDED for the cache."""
        self._handlers.append(handler)
        if self.synced:
            for obj in list(self._items.values()):
                handler("ADDED", None, obj)

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        if name in self._indexers:
            return
        self._indexers[name] = fn
        index: defaultdict[str, set[str]] = defaultdict(set)
        for key, obj in self._items.items():
            for value in fn(obj):
                index[value].add(key)
        self._indexes[name] = index

    # -- keeping it current ------------------------------------------------------------------

    def _store(self, obj: Obj) -> Obj | None:
        key = key_of(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, fn in self._indexers.items():
            for value in fn(obj):
                self._indexes[name][value].add(key)
        return old

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._indexers.items():
            index = self._indexes[name]
            for value in fn(obj):
                members = index.get(value)
                if members is not None:
                    members.discard(key)
                    if not members:
                        del index[value]

    def _delete(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _notify(self, event: str, old: Obj | None, new: Obj | None) -> None:
        for handler in self._handlers:
            try:
                handler(event, old, new)
            except Exception:
                log.exception("%s handler failed on %s", self.rp.plural, event)

    def apply(self, event: str, obj: Obj) -> None:
        """Apply one watch event to the cache and tell the handlers (also used by tests)."""
        _strip_managed_fields(obj)
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if rv:
            self.resource_version = rv
        if event == "BOOKMARK":
            return
        if event == "DELETED":
            old = self._delete(key_of(obj))
            self._notify("DELETED", old, obj)
            return
        old = self._store(obj)
        self._notify("ADDED" if old is None else "MODIFIED", old, obj)

    async def _relist(self) -> None:
        # Items unchanged since the cache saw them are replaced by the cached object as each
        # page arrives: a relist of 30,000 pods would otherwise hold a second decoded copy of
        # every one of them until the list is complete.
        items: list[Obj] = []
        params = {**self._params, "limit": str(LIST_PAGE)}
        while True:
            page = await self._client.list(self.rp, params=params)
            for obj in page.get("items") or []:
                old = self._items.get(key_of(obj))
                items.append(old if old is not None and _version(old) == _version(obj) else obj)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            params = {**self._params, "limit": str(LIST_PAGE), "continue": token}
        self.resource_version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        kind = str(page.get("kind", "")).removesuffix("List")
        api_version = str(page.get("apiVersion", ""))
        seen: set[str] = set()
        for obj in items:
            key = key_of(obj)
            seen.add(key)
            old = self._items.get(key)
            if old is obj:
                continue
            # List items carry no kind; handlers (and owner references built from them) want it.
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", api_version)
            _strip_managed_fields(obj)
            self._store(obj)
            self._notify("ADDED" if old is None else "MODIFIED", old, obj)
        for key in [k for k in self._items if k not in seen]:
            old = self._delete(key)
            self._notify("DELETED", old, old)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        need_list = True
        while not stop.is_set():
            try:
                if need_list:
                    await self._relist()
                    self._synced.set()
                    need_list = False
                await self._watch(stop)
                backoff = 0.2
            except errors.Expired:
                log.debug("%s watch expired at %s; relisting", self.rp.plural, self.resource_version)
                need_list = True
            except (errors.StatusError, OSError, TimeoutError, ValueError) as exc:
                if stop.is_set():
                    return
                log.debug("%s list/watch failed (%s); retrying in %.1fs", self.rp.plural, exc, backoff)
                await self._clock.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                if isinstance(exc, errors.StatusError) and exc.code == 410:
                    need_list = True

    async def _watch(self, stop: asyncio.Event) -> None:
        params = {
            **self._params,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self._watch_timeout),
        }
        # Cached objects are read-only, so the process's other informers may share them.
        stream = self._client.watch(self.rp, params=params, shared=True)

        async def consume() -> None:
            async for event in stream:
                kind = str(event.get("type", ""))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        raise errors.Expired(message=str(obj.get("message", "expired")))
                    raise errors.StatusError.from_status(obj)
                self.apply(kind, obj)

        # One task for the whole stream, raced once against `stop` (not a task and a wait per
        # event: those were ~2 % of the server's CPU at 1,000 nodes).
        consumer = asyncio.ensure_future(consume())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({consumer, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if consumer.done():
                consumer.result()
        finally:
            stopping.cancel()
            if not consumer.done():
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)
            await stream.aclose()


class InformerFactory:
    """One informer per resource path, shared by every controller of the process."""

    def __init__(self, client: Client, *, clock: Clock | None = None) -> None:
        self._client = client
        self._clock = clock or RealClock()
        self._informers: dict[ResourcePath, Informer] = {}
        self._started: set[ResourcePath] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._stop: asyncio.Event | None = None

    def informer(self, rp: ResourcePath) -> Informer:
        found = self._informers.get(rp)
        if found is None:
            found = Informer(self._client, rp, clock=self._clock)
            self._informers[rp] = found
            if self._tg is not None and self._stop is not None:
                self._launch(rp)
        return found

    def start(self, tg: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        """Run every informer requested so far (and any requested later) in `tg`."""
        self._tg, self._stop = tg, stop
        for rp in list(self._informers):
            self._launch(rp)

    def _launch(self, rp: ResourcePath) -> None:
        if rp in self._started or self._tg is None or self._stop is None:
            return
        self._started.add(rp)
        self._tg.create_task(self._informers[rp].run(self._stop), name=f"informer-{rp.plural}")

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self._informers.values()))

    def all(self) -> list[Informer]:
        return list(self._informers.values())
