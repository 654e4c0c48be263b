"""The webhook configurations in force, read from the object store on every request: a
configuration written just before must apply to the next request. The read is the storage's
cached latest list of what is usually an empty or tiny prefix: while that cached list is the very
object seen last time (`Storage.peek_list`), nothing under the prefix has changed and the parsed
webhooks are reused without a storage call; otherwise a configuration is decoded and its webhooks
parsed again only when its revision moves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from controlplane.apiserver.store import decode
from controlplane.apiserver.webhooks.config import Kind, Webhook, webhooks_of
from controlplane.storage.interface import KeyValue

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = ["ConfigurationSource"]

GROUP = "admissionregistration.k8s.io"
PLURALS: dict[Kind, str] = {
    "mutating": "mutatingwebhookconfigurations",
    "validating": "validatingwebhookconfigurations",
}


class ConfigurationSource:
    def __init__(self) -> None:
        # (kind, storage key) -> (revision, configuration name, its webhooks)
        self._parsed: dict[tuple[Kind, str], tuple[int, str, list[Webhook]]] = {}
        # kind -> the (key, revision) pairs last listed and the webhooks they make, in order
        self._last: dict[Kind, tuple[list[tuple[str, int]], list[Webhook]]] = {}
        # kind -> the storage's cached list those webhooks were parsed from (compared by identity)
        self._seen_list: dict[Kind, Sequence[KeyValue]] = {}

    async def webhooks(self, ctx: ServerContext, kind: Kind) -> list[Webhook]:
        """Configurations in name order (upstream sorts them), webhooks in their list order."""
        info = ctx.registry.get(GROUP, "v1", PLURALS[kind])
        if info is None:
            return []
        prefix = info.list_prefix(None)
        last = self._last.get(kind)
        peeked = ctx.storage.peek_list(prefix)
        if last is not None and peeked is not None and self._seen_list.get(kind) is peeked:
            return list(last[1])
        page = await ctx.store.list(info, None)
        listed = [(kv.key, kv.mod_revision) for kv in page.kvs]
        # The list read may have filled the storage's cache, or a write may have replaced it since:
        # keep it as the token only if it holds exactly what was just listed.
        after = ctx.storage.peek_list(prefix)
        if after is not None and [(kv.key, kv.mod_revision) for kv in after] == listed:
            self._seen_list[kind] = after
        else:
            self._seen_list.pop(kind, None)
        if last is not None and last[0] == listed:
            return list(last[1])
        entries: list[tuple[str, list[Webhook]]] = []
        for kv in page.kvs:
            key = (kind, kv.key)
            cached = self._parsed.get(key)
            if cached is None or cached[0] != kv.mod_revision:
                configuration = decode(kv)
                cached = (
                    kv.mod_revision,
                    str(configuration["metadata"]["name"]),
                    webhooks_of(configuration, kind),
                )
                self._parsed[key] = cached
            entries.append((cached[1], cached[2]))
        seen = {(kind, kv.key) for kv in page.kvs}
        for stale in [k for k in self._parsed if k[0] == kind and k not in seen]:
            del self._parsed[stale]
        out = [hook for _, hooks in sorted(entries, key=lambda entry: entry[0]) for hook in hooks]
        self._last[kind] = (listed, out)
        return list(out)
