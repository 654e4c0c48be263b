"""The webhook configurations in force, read from the object store on every request: a
configuration written just before must apply to the next request, and the two reads are
range scans over what is usually an empty or tiny prefix. Parsed webhooks are reused while a
configuration's resourceVersion is unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.apiserver.webhooks.config import Kind, Webhook, webhooks_of

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
        self._parsed: dict[tuple[Kind, str], tuple[str, list[Webhook]]] = {}

    async def webhooks(self, ctx: ServerContext, kind: Kind) -> list[Webhook]:
        """Configurations in name order (upstream sorts them), webhooks in their list order."""
        info = ctx.registry.get(GROUP, "v1", PLURALS[kind])
        if info is None:
            return []
        page = await ctx.store.list(info, None)
        out: list[Webhook] = []
        seen: set[tuple[Kind, str]] = set()
        for configuration in sorted(page.items, key=lambda c: str(c["metadata"]["name"])):
            meta = configuration["metadata"]
            key = (kind, str(meta["name"]))
            seen.add(key)
            version = str(meta.get("resourceVersion", ""))
            cached = self._parsed.get(key)
            if cached is None or cached[0] != version:
                cached = (version, webhooks_of(configuration, kind))
                self._parsed[key] = cached
            out.extend(cached[1])
        for stale in [k for k in self._parsed if k[0] == kind and k not in seen]:
            del self._parsed[stale]
        return out
