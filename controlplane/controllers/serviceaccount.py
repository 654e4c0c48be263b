"""ServiceAccount controller (upstream pkg/controller/serviceaccount): a `default` ServiceAccount in
every active namespace, recreated whenever it is deleted."""

from __future__ import annotations

from typing import Any

from controlplane.api import errors
from controlplane.controllers.runtime import Controller, R
from controlplane.controllers.status_causes import namespace_terminating

__all__ = ["MANAGED_NAMES", "ServiceAccountController"]

MANAGED_NAMES = ("default",)


class ServiceAccountController(Controller):
    name = "serviceaccount"
    workers = 1

    def setup(self) -> None:
        self.namespaces = self.ctx.informers.informer(R.NAMESPACES)
        self.accounts = self.ctx.informers.informer(R.SERVICEACCOUNTS)
        self.namespaces.add_handler(self._on_namespace)
        self.accounts.add_handler(self._on_account)

    def _on_namespace(self, event: str, _old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event != "DELETED" and new is not None:
            self.enqueue(new["metadata"]["name"])

    def _on_account(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        gone = old or new
        if event == "DELETED" and gone is not None and gone["metadata"].get("name") in MANAGED_NAMES:
            self.enqueue(str(gone["metadata"].get("namespace", "")))

    async def reconcile(self, key: str) -> float | None:
        namespace = self.namespaces.get(key)
        if namespace is None or (namespace.get("status") or {}).get("phase") != "Active":
            return None
        for name in MANAGED_NAMES:
            if self.accounts.get(f"{key}/{name}") is not None:
                continue
            body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
            try:
                await self.ctx.client.create(R.SERVICEACCOUNTS, body, key)
            except errors.AlreadyExists:
                continue  # our cache lags our own (or another copy's) write
            except errors.Forbidden as exc:
                if namespace_terminating(exc):
                    return None
                raise
        return None
