"""Objects over the revision log: encode/decode, resourceVersion, and storage errors as Status.

The revision that last wrote a key is the object's `resourceVersion`; it is filled in on every read
rather than stored, so it can never disagree with the log. Storage errors become Status errors
here, once.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import orjson

from controlplane.api import errors
from controlplane.api.patch._smp_json import json_copy
from controlplane.api.resources import ResourceInfo
from controlplane.apiserver.stored_as import StoredAsCodec
from controlplane.storage import errors as storage_errors
from controlplane.storage.interface import Event, KeyValue, Storage, Trigger, Watch
from controlplane.storage.revlog import FutureRevision

__all__ = ["CustomCodec", "ListPage", "ObjectStore", "decode", "raw_object", "translated"]


_METADATA = b'"metadata":{'
# Entries each of ObjectStore's decoded caches keeps: prefixes for `latest_objects`, keys for
# `get_shared` (the storage's own bound on cached small lists is of the same order).
_DECODED_ENTRIES = 4096


def raw_object(kv: KeyValue) -> bytes:
    """The stored JSON with `metadata.resourceVersion` spliced in, without decoding it.

    `_encode` writes apiVersion and kind (strings) and then metadata first, so the first unescaped
    `"metadata":{` in the bytes is the object's own (a quote inside any string value is escaped).
    """
    value = kv.value
    at = value.find(_METADATA)
    # Only splice when no object or array opens before it, i.e. it is surely the top-level key.
    if at < 0 or not value.startswith(b"{") or b"{" in value[1:at] or b"[" in value[1:at]:
        return orjson.dumps(decode(kv))
    at += len(_METADATA)
    rv = b'"resourceVersion":"' + str(kv.mod_revision).encode() + b'"'
    return value[:at] + rv + (b"," if value[at : at + 1] != b"}" else b"") + value[at:]


class ListPage:
    """A page of a list; objects are decoded only when asked for (a plain JSON list is served
    from the stored bytes)."""

    def __init__(
        self,
        kvs: list[KeyValue],
        revision: int,
        last_key: str,
        *,
        more: bool,
        remaining: int,
        decoded: list[dict[str, Any]] | None = None,
        raw_from_decoded: bool = False,
    ) -> None:
        self.kvs = kvs
        self.revision = revision
        self.last_key = last_key  # key of the last item scanned (the continue point)
        self.more = more
        self.remaining = remaining
        self._decoded = decoded
        # Custom resources are converted and defaulted on read: their stored bytes are not the answer.
        self._raw_from_decoded = raw_from_decoded

    @property
    def items(self) -> list[dict[str, Any]]:
        if self._decoded is None:
            self._decoded = [decode(kv) for kv in self.kvs]
        return self._decoded

    def raw_items(self) -> list[bytes]:
        if self._raw_from_decoded:
            return [orjson.dumps(obj) for obj in self.items]
        return [raw_object(kv) for kv in self.kvs]


def decode(kv: KeyValue) -> dict[str, Any]:
    obj: dict[str, Any] = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def _encode(obj: dict[str, Any]) -> bytes:
    """apiVersion, kind, then metadata first (see `raw_object`), without the resourceVersion,
    which is the log's revision and filled in on read."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    ordered: dict[str, Any] = {}
    for key in ("apiVersion", "kind"):
        if isinstance(obj.get(key), str):
            ordered[key] = obj[key]
    ordered["metadata"] = meta
    for key, value in obj.items():
        if key not in ordered:
            ordered[key] = value
    return orjson.dumps(ordered)


class translated:
    """Map storage errors to the Status errors clients expect. A class rather than an
    @asynccontextmanager: it wraps every storage call, and an async generator per call costs more."""

    __slots__ = ("_info", "_name")

    def __init__(self, info: ResourceInfo, name: str = "") -> None:
        self._info = info
        self._name = name

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, storage_errors.StorageError):  # FutureRevision is one too
            raise _status_of(exc, self._info, self._name) from exc


def _status_of(exc: BaseException, info: ResourceInfo, name: str) -> errors.StatusError:
    if isinstance(exc, storage_errors.KeyExists):
        return errors.AlreadyExists.for_object(info.plural, info.group, name)
    if isinstance(exc, storage_errors.KeyNotFound):
        return errors.NotFound.for_object(info.plural, info.group, name)
    if isinstance(exc, storage_errors.RevisionConflict):
        return errors.Conflict.modified(info.plural, info.group, name)
    if isinstance(exc, storage_errors.Compacted):
        return errors.Expired(message=f"too old resource version: {exc.requested} ({exc.compacted})")
    if isinstance(exc, FutureRevision):
        return errors.Timeout(
            message=f"Too large resource version: {exc}",
            causes=[errors.Cause("ResourceVersionTooLarge", "Too large resource version")],
            retry_after=1,
        )
    return errors.ServiceUnavailable(message=f"storage is unavailable: {exc}")


class CustomCodec(Protocol):
    """A kind between the form served and the form stored: custom resources (the CRD machinery)
    and built-in kinds stored as another group's (`controlplane.apiserver.stored_as`)."""

    async def from_storage(self, info: ResourceInfo, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stored objects as `info.version` serves them (converted, defaulted); in place allowed."""
        ...

    async def to_storage(self, info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
        """A copy of `obj` in the storage version."""
        ...

    def synchronous(self, info: ResourceInfo) -> bool:
        """Whether `from_storage` finishes without awaiting anything (no conversion webhook)."""
        ...

    def watch(self, info: ResourceInfo, watch: Watch) -> Watch:
        """`watch` as served to the client (it ends when the CRD stops serving the version)."""
        ...


class ObjectStore:
    def __init__(self, storage: Storage, custom: CustomCodec | None = None) -> None:
        self.storage = storage
        self.custom = custom
        self._stored_as = StoredAsCodec()
        # prefix -> (the storage's cached list, by identity; its objects decoded)
        self._latest: dict[str, tuple[Sequence[KeyValue], list[dict[str, Any]]]] = {}
        # key -> (the storage's KeyValue, by identity; the object decoded)
        self._shared: dict[str, tuple[KeyValue, dict[str, Any]]] = {}

    def _codec(self, info: ResourceInfo) -> CustomCodec | None:
        """What converts `info`'s objects between served and stored form, if anything does."""
        if info.custom:
            return self.custom
        if info.stored_as and self._stored_as.handles(info):
            return self._stored_as
        return None

    def _converts(self, info: ResourceInfo) -> bool:
        return self._codec(info) is not None

    async def _read(self, info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
        codec = self._codec(info)
        if codec is None:
            return obj
        return (await codec.from_storage(info, [obj]))[0]

    async def get(self, info: ResourceInfo, namespace: str, name: str) -> dict[str, Any]:
        async with translated(info, name):
            kv = await self.storage.get(info.key(namespace, name))
        if kv is None:
            raise errors.NotFound.for_object(info.plural, info.group, name)
        return await self._read(info, decode(kv))

    async def get_twice(
        self, info: ResourceInfo, namespace: str, name: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The object, twice, sharing nothing (two decodes of the stored bytes): a read-modify-write
        changes the second and compares it with the first."""
        async with translated(info, name):
            kv = await self.storage.get(info.key(namespace, name))
        if kv is None:
            raise errors.NotFound.for_object(info.plural, info.group, name)
        if self._converts(info):
            obj = await self._read(info, decode(kv))
            return obj, json_copy(obj)
        return decode(kv), decode(kv)

    async def get_or_none(self, info: ResourceInfo, namespace: str, name: str) -> dict[str, Any] | None:
        async with translated(info, name):
            kv = await self.storage.get(info.key(namespace, name))
        return await self._read(info, decode(kv)) if kv is not None else None

    async def get_shared(self, info: ResourceInfo, namespace: str, name: str) -> dict[str, Any] | None:
        """`get_or_none`, decoded once per write: the storage hands back the very KeyValue while
        the key is unchanged (its cache of recent values). For reads on every create (the
        namespace's lifecycle): the object is shared between callers, who must not modify it."""
        if self._converts(info):
            return await self.get_or_none(info, namespace, name)
        key = info.key(namespace, name)
        async with translated(info, name):
            kv = await self.storage.get(key)
        if kv is None:
            self._shared.pop(key, None)
            return None
        hit = self._shared.get(key)
        if hit is not None and hit[0] is kv:
            return hit[1]
        obj = decode(kv)
        if len(self._shared) >= _DECODED_ENTRIES:
            self._shared.clear()
        self._shared[key] = (kv, obj)
        return obj

    async def latest_objects(self, info: ResourceInfo, namespace: str | None) -> Sequence[dict[str, Any]]:
        """The latest objects of a namespace (or cluster), decoded once per change: while the
        storage's cached list of the prefix is the very object seen last time (`peek_list`),
        nothing under it changed. For admission's reads on every create (LimitRanges, quotas,
        PriorityClasses): the objects are shared between callers, who must not modify them."""
        if self._converts(info):
            return (await self.list(info, namespace)).items
        prefix = info.list_prefix(namespace)
        peeked = self.storage.peek_list(prefix)
        if peeked is not None:
            hit = self._latest.get(prefix)
            if hit is not None and hit[0] is peeked:
                return hit[1]
        page = await self.list(info, namespace)
        objects = page.items
        after = self.storage.peek_list(prefix)
        # Keep the token only if it holds exactly what was just decoded (a write may have replaced
        # the cached list since, or the read may not have filled it).
        if (
            after is not None
            and len(after) == len(page.kvs)
            and all(a is b for a, b in zip(after, page.kvs, strict=True))
        ):
            if len(self._latest) >= _DECODED_ENTRIES:
                self._latest.clear()
            self._latest[prefix] = (after, objects)
        else:
            self._latest.pop(prefix, None)
        return objects

    async def list(
        self,
        info: ResourceInfo,
        namespace: str | None,
        *,
        revision: int | None = None,
        limit: int = 0,
        start_after: str = "",
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> ListPage:
        """A page of objects. With a predicate and a limit, keeps reading until `limit` objects
        match or the prefix is exhausted, like upstream's paging with selectors."""
        if self._converts(info):
            return await self._list_converted(
                info, namespace, revision=revision, limit=limit, start_after=start_after, predicate=predicate
            )
        return await self._list_stored(
            info, namespace, revision=revision, limit=limit, start_after=start_after, predicate=predicate
        )

    async def _list_stored(
        self,
        info: ResourceInfo,
        namespace: str | None,
        *,
        revision: int | None,
        limit: int,
        start_after: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> ListPage:
        """`list` of the stored objects as they are stored."""
        prefix = info.list_prefix(namespace)
        kvs: list[KeyValue] = []
        matched: list[dict[str, Any]] = []
        cursor = start_after
        read_at = revision
        async with translated(info):
            while True:
                want = max(limit - len(kvs), 0) if limit else 0
                batch = max(want, 50) if (limit and predicate) else want
                page = await self.storage.list(prefix, revision=read_at, limit=batch, start_after=cursor)
                read_at = page.revision
                for index, kv in enumerate(page.items):
                    if predicate is not None:
                        obj = decode(kv)
                        if not predicate(obj):
                            continue
                        matched.append(obj)
                    kvs.append(kv)
                    if limit and len(kvs) >= limit:
                        scanned_all = index == len(page.items) - 1 and not page.more
                        return ListPage(
                            kvs,
                            page.revision,
                            kv.key,
                            more=not scanned_all,
                            remaining=0 if predicate else (page.remaining + len(page.items) - index - 1),
                            decoded=matched if predicate is not None else None,
                        )
                if page.items:
                    cursor = page.items[-1].key
                if not page.more or not limit:
                    return ListPage(
                        kvs,
                        page.revision,
                        cursor,
                        more=False,
                        remaining=0,
                        decoded=matched if predicate is not None else None,
                    )

    async def _list_converted(
        self,
        info: ResourceInfo,
        namespace: str | None,
        *,
        revision: int | None,
        limit: int,
        start_after: str,
        predicate: Callable[[dict[str, Any]], bool] | None,
    ) -> ListPage:
        """Selectors see the served version of each object (converted, defaulted), as upstream's."""
        codec = self._codec(info)
        assert codec is not None
        page = await self._list_stored(
            info, namespace, revision=revision, limit=0 if predicate else limit, start_after=start_after
        )
        objects = await codec.from_storage(info, page.items)
        if predicate is None:
            return ListPage(
                page.kvs,
                page.revision,
                page.last_key,
                more=page.more,
                remaining=page.remaining,
                decoded=objects,
                raw_from_decoded=True,
            )
        kvs: list[KeyValue] = []
        matched: list[dict[str, Any]] = []
        for kv, obj in zip(page.kvs, objects, strict=True):
            if not predicate(obj):
                continue
            kvs.append(kv)
            matched.append(obj)
            if limit and len(kvs) >= limit:
                more = kv is not page.kvs[-1]
                return ListPage(
                    kvs, page.revision, kv.key, more=more, remaining=0, decoded=matched, raw_from_decoded=True
                )
        return ListPage(
            kvs, page.revision, page.last_key, more=False, remaining=0, decoded=matched, raw_from_decoded=True
        )

    async def get_raw(self, info: ResourceInfo, namespace: str, name: str) -> bytes:
        async with translated(info, name):
            kv = await self.storage.get(info.key(namespace, name))
        if kv is None:
            raise errors.NotFound.for_object(info.plural, info.group, name)
        if self._converts(info):
            return orjson.dumps(await self._read(info, decode(kv)))
        return raw_object(kv)

    async def _stored_form(self, info: ResourceInfo, obj: dict[str, Any]) -> bytes:
        codec = self._codec(info)
        if codec is not None:
            return _encode(await codec.to_storage(info, obj))
        return _encode(obj)

    async def create(self, info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        value = await self._stored_form(info, obj)
        async with translated(info, meta["name"]):
            kv = await self.storage.create(info.key(meta.get("namespace", ""), meta["name"]), value)
        meta["resourceVersion"] = str(kv.mod_revision)
        return obj

    async def update(
        self, info: ResourceInfo, obj: dict[str, Any], *, expected_revision: int
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        value = await self._stored_form(info, obj)
        async with translated(info, meta["name"]):
            kv = await self.storage.update(
                info.key(meta.get("namespace", ""), meta["name"]),
                value,
                expected_revision=expected_revision,
            )
        meta["resourceVersion"] = str(kv.mod_revision)
        return obj

    async def delete(
        self, info: ResourceInfo, namespace: str, name: str, *, expected_revision: int | None
    ) -> dict[str, Any]:
        async with translated(info, name):
            kv = await self.storage.delete(info.key(namespace, name), expected_revision=expected_revision)
        return await self._read(info, decode(kv))

    async def watch(
        self, info: ResourceInfo, namespace: str | None, *, revision: int, trigger: Trigger | None = None
    ) -> Watch:
        async with translated(info):
            watch = await self.storage.watch(info.list_prefix(namespace), revision=revision, trigger=trigger)
        codec = self._codec(info)
        if codec is not None:
            return codec.watch(info, _ConvertingWatch(watch, info, codec))
        return watch

    async def current_revision(self) -> int:
        return await self.storage.current_revision()

    async def compacted_revision(self) -> int:
        return await self.storage.compacted_revision()


def event_objects(event: Event) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(previous object or None, current object) of a storage event."""
    prev = decode(event.prev) if event.prev is not None else None
    return prev, decode(event.kv)


class _ConvertingWatch:
    """A watch whose events carry the served version of each object (custom resources, and
    built-in kinds stored as another group's).

    Events are rebuilt with converted, defaulted values (encoded like stored ones, so the watch
    code's byte splicing still applies). Watchers share decoded events by (revision, key), so a
    version other than the storage version gets keys of its own.
    """

    def __init__(self, inner: Watch, info: ResourceInfo, codec: CustomCodec) -> None:
        self._inner = inner
        self._info = info
        self._codec = codec
        # Custom resources: the storage version's events are shared as they are. A built-in kind
        # stored as another group's is never served as stored.
        if info.stored_as:
            self._suffix = f"\x00{info.api_version}"
        else:
            self._suffix = "" if info.version == info.storage_version else f"\x00{info.version}"
        self._yielded = 0  # the revision of the last event handed out

    async def _kv(self, kv: KeyValue) -> KeyValue:
        obj = decode(kv)
        converted = (await self._codec.from_storage(self._info, [obj]))[0]
        converted = copy.copy(converted)
        return replace(kv, key=kv.key + self._suffix, value=_encode(converted))

    async def _event(self, event: Event) -> Event:
        prev = await self._kv(event.prev) if event.prev is not None else None
        return replace(event, kv=await self._kv(event.kv), prev=prev)

    async def _iterate(self) -> AsyncIterator[Event]:
        async for event in self._inner:
            converted = await self._event(event)
            self._yielded = converted.revision
            yield converted

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    def ready(self, limit: int = 256) -> list[Event]:
        if not self._codec.synchronous(self._info):
            return []  # a conversion webhook is awaited per event by the iterator
        out: list[Event] = []
        for event in self._inner.ready(limit):
            coroutine = self._event(event)
            try:
                coroutine.send(None)
            except StopIteration as done:
                out.append(done.value)
            else:  # pragma: no cover - synchronous() promised no awaiting
                coroutine.close()
                raise RuntimeError("custom resource conversion awaited in a synchronous watch")
        if out:
            self._yielded = out[-1].revision
        return out

    def progress(self) -> int:
        if not self._codec.synchronous(self._info):
            # The iterator may be converting an event the inner watch already counts as yielded.
            return self._yielded
        return max(self._yielded, self._inner.progress())

    async def close(self) -> None:
        await self._inner.close()
