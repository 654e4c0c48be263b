"""Objects over the revision log: encode/decode, resourceVersion, and storage errors as Status.

The revision that last wrote a key is the object's `resourceVersion`; it is filled in on every read
rather than stored, so it can never disagree with the log. Storage errors become Status errors
here, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson

from controlplane.api import errors
from controlplane.api.resources import ResourceInfo
from controlplane.storage import errors as storage_errors
from controlplane.storage.interface import Event, KeyValue, Storage, Watch
from controlplane.storage.revlog import FutureRevision

__all__ = ["ListPage", "ObjectStore", "decode", "raw_object", "translated"]


_METADATA = b'"metadata":{'


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
    ) -> None:
        self.kvs = kvs
        self.revision = revision
        self.last_key = last_key  # key of the last item scanned (the continue point)
        self.more = more
        self.remaining = remaining
        self._decoded = decoded

    @property
    def items(self) -> list[dict[str, Any]]:
        if self._decoded is None:
            self._decoded = [decode(kv) for kv in self.kvs]
        return self._decoded

    def raw_items(self) -> list[bytes]:
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


@asynccontextmanager
async def translated(info: ResourceInfo, name: str = "") -> AsyncIterator[None]:
    """Map storage errors to the Status errors clients expect."""
    try:
        yield
    except storage_errors.KeyExists as exc:
        raise errors.AlreadyExists.for_object(info.plural, info.group, name) from exc
    except storage_errors.KeyNotFound as exc:
        raise errors.NotFound.for_object(info.plural, info.group, name) from exc
    except storage_errors.RevisionConflict as exc:
        raise errors.Conflict.modified(info.plural, info.group, name) from exc
    except storage_errors.Compacted as exc:
        raise errors.Expired(message=f"too old resource version: {exc.requested} ({exc.compacted})") from exc
    except FutureRevision as exc:
        raise errors.Timeout(
            message=f"Too large resource version: {exc}",
            causes=[errors.Cause("ResourceVersionTooLarge", "Too large resource version")],
            retry_after=1,
        ) from exc
    except storage_errors.StorageError as exc:
        raise errors.ServiceUnavailable(message=f"storage is unavailable: {exc}") from exc


class ObjectStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def get(self, info: ResourceInfo, namespace: str, name: str) -> dict[str, Any]:
        async with translated(info, name):
            kv = await self.storage.get(info.key(namespace, name))
        if kv is None:
            raise errors.NotFound.for_object(info.plural, info.group, name)
        return decode(kv)

    async def get_or_none(self, info: ResourceInfo, namespace: str, name: str) -> dict[str, Any] | None:
        async with translated(info, name):
            kv = await self.storage.get(info.key(namespace, name))
        return decode(kv) if kv is not None else None

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

    async def get_raw(self, info: ResourceInfo, namespace: str, name: str) -> bytes:
        async with translated(info, name):
            kv = await self.storage.get(info.key(namespace, name))
        if kv is None:
            raise errors.NotFound.for_object(info.plural, info.group, name)
        return raw_object(kv)

    async def create(self, info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        async with translated(info, meta["name"]):
            kv = await self.storage.create(info.key(meta.get("namespace", ""), meta["name"]), _encode(obj))
        meta["resourceVersion"] = str(kv.mod_revision)
        return obj

    async def update(
        self, info: ResourceInfo, obj: dict[str, Any], *, expected_revision: int
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        async with translated(info, meta["name"]):
            kv = await self.storage.update(
                info.key(meta.get("namespace", ""), meta["name"]),
                _encode(obj),
                expected_revision=expected_revision,
            )
        meta["resourceVersion"] = str(kv.mod_revision)
        return obj

    async def delete(
        self, info: ResourceInfo, namespace: str, name: str, *, expected_revision: int | None
    ) -> dict[str, Any]:
        async with translated(info, name):
            kv = await self.storage.delete(info.key(namespace, name), expected_revision=expected_revision)
        return decode(kv)

    async def watch(self, info: ResourceInfo, namespace: str | None, *, revision: int) -> Watch:
        async with translated(info):
            return await self.storage.watch(info.list_prefix(namespace), revision=revision)

    async def current_revision(self) -> int:
        return await self.storage.current_revision()

    async def compacted_revision(self) -> int:
        return await self.storage.compacted_revision()


def event_objects(event: Event) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(previous object or None, current object) of a storage event."""
    prev = decode(event.prev) if event.prev is not None else None
    return prev, decode(event.kv)
