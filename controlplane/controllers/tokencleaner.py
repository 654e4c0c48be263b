"""Token cleaner (upstream pkg/controller/bootstrap/tokencleaner.go): deletes bootstrap token
Secrets in kube-system once their `expiration` has passed, and looks again at each unexpired one
when it is due."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.controllers.runtime import Controller, R

__all__ = ["BOOTSTRAP_TOKEN_SECRET_TYPE", "TokenCleaner", "time_left"]

BOOTSTRAP_TOKEN_SECRET_TYPE = "bootstrap.kubernetes.io/token"
TOKEN_NAMESPACE = "kube-system"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def time_left(secret: Mapping[str, Any], now: datetime) -> tuple[float, bool]:
    """(seconds left, expired) of a bootstrap token Secret, as k8s.io/cluster-bootstrap's
    GetExpiration: no `expiration` never expires; one that does not parse counts as expired."""
    data = secret.get("data")
    raw = data.get("expiration") if isinstance(data, Mapping) else None
    if not isinstance(raw, str) or not raw:
        return 0.0, False
    try:
        value = base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return 0.0, True
    if not value:
        return 0.0, False
    if not _RFC3339.fullmatch(value):
        return 0.0, True
    left = (datetime.fromisoformat(value.replace("Z", "+00:00")) - now).total_seconds()
    return (0.0, True) if left <= 0 else (left, False)


class TokenCleaner(Controller):
    name = "tokencleaner"
    workers = 1

    def setup(self) -> None:
        self.secrets = self.ctx.informers.informer(R.SECRETS)
        self.secrets.add_handler(self._on_secret)

    def _on_secret(self, event: str, _old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event == "DELETED" or new is None or new.get("type") != BOOTSTRAP_TOKEN_SECRET_TYPE:
            return
        if new["metadata"].get("namespace") == TOKEN_NAMESPACE:
            self.enqueue_obj(new)

    async def reconcile(self, key: str) -> float | None:
        secret = self.secrets.get(key)
        if secret is None or secret.get("type") != BOOTSTRAP_TOKEN_SECRET_TYPE:
            return None
        meta = secret["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        left, expired = time_left(secret, self.ctx.clock.now())
        if not expired:
            return left if left > 0 else None
        self.log.info("deleting expired bootstrap token Secret %s", key)
        try:
            await self.ctx.client.delete(
                R.SECRETS,
                meta["name"],
                meta.get("namespace", ""),
                options={"preconditions": {"uid": meta.get("uid", "")}},
            )
        except errors.NotFound:
            pass
        except errors.Conflict:
            return 0.0  # replaced by a new Secret of the same name: judge that one
        return None
