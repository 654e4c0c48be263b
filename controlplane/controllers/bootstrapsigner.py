"""Bootstrap signer (upstream pkg/controller/bootstrap/bootstrapsigner.go): keeps
`kube-public/cluster-info` signed with every bootstrap token that may sign.

For each bootstrap token Secret in kube-system named `bootstrap-token-<id>` whose `token-id` is
`<id>`, with a `token-secret`, not expired and with `usage-bootstrap-signing: "true"`, the ConfigMap
holds `jws-kubeconfig-<id>`: the detached JWS of its `kubeconfig` key keyed by the token secret.
Signatures of other tokens are dropped. The ConfigMap is written only when a signature changed,
appeared or went away.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.api.bootstrap_jws import compute_detached_signature
from controlplane.controllers.runtime import Controller, R
from controlplane.controllers.tokencleaner import BOOTSTRAP_TOKEN_SECRET_TYPE, TOKEN_NAMESPACE, time_left

__all__ = [
    "CLUSTER_INFO",
    "JWS_SIGNATURE_KEY_PREFIX",
    "KUBECONFIG_KEY",
    "BootstrapSigner",
    "signed_data",
    "signing_tokens",
]

CONFIGMAP_NAMESPACE = "kube-public"
CLUSTER_INFO = "cluster-info"
KUBECONFIG_KEY = "kubeconfig"
JWS_SIGNATURE_KEY_PREFIX = "jws-kubeconfig-"
_SECRET_NAME = re.compile(r"bootstrap-token-([a-z0-9]{6})")


def _data(secret: Mapping[str, Any], key: str) -> str:
    """bootstrapsecretutil.GetData: the decoded value, or empty when absent or unreadable."""
    data = secret.get("data")
    raw = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return ""


def _token_for_signing(secret: Mapping[str, Any], now: datetime) -> tuple[str, str, float] | None:
    """validateSecretForSigning: (token id, token secret, seconds until it expires or 0 for never)."""
    match = _SECRET_NAME.fullmatch(str((secret.get("metadata") or {}).get("name") or ""))
    if match is None:
        return None
    token_id = _data(secret, "token-id")
    if not token_id or token_id != match.group(1):
        return None
    token_secret = _data(secret, "token-secret")
    if not token_secret:
        return None
    # The token cleaner deletes expired tokens, but it may be off or not there yet.
    left, expired = time_left(secret, now)
    if expired or _data(secret, "usage-bootstrap-signing") != "true":
        return None
    return token_id, token_secret, left


def signing_tokens(
    secrets: Iterable[Mapping[str, Any]], now: datetime
) -> tuple[dict[str, str], float | None]:
    """Token id -> token secret of the Secrets fit for signing, and the seconds until the first of
    them expires (None when none does), so the signature can be dropped right then."""
    tokens: dict[str, str] = {}
    soonest: float | None = None
    for secret in sorted(secrets, key=lambda s: str((s.get("metadata") or {}).get("name") or "")):
        if secret.get("type") != BOOTSTRAP_TOKEN_SECRET_TYPE:
            continue
        found = _token_for_signing(secret, now)
        if found is None:
            continue
        token_id, token_secret, left = found
        if token_id in tokens:  # cannot happen while names carry the id; upstream keeps the first
            continue
        tokens[token_id] = token_secret
        if left > 0 and (soonest is None or left < soonest):
            soonest = left
    return tokens, soonest


def signed_data(data: Mapping[str, str], tokens: Mapping[str, str]) -> dict[str, str] | None:
    """signConfigMap: the ConfigMap data with exactly the signatures of `tokens`, or None when it
    has no kubeconfig to sign or its signatures are already right."""
    content = data.get(KUBECONFIG_KEY)
    if content is None:
        return None
    new = {k: v for k, v in data.items() if not k.startswith(JWS_SIGNATURE_KEY_PREFIX)}
    old = {
        k[len(JWS_SIGNATURE_KEY_PREFIX) :]: v
        for k, v in data.items()
        if k.startswith(JWS_SIGNATURE_KEY_PREFIX)
    }
    changed = False
    for token_id, token_secret in tokens.items():
        signature = compute_detached_signature(content, token_id, token_secret)
        if old.pop(token_id, None) != signature:
            changed = True
        new[JWS_SIGNATURE_KEY_PREFIX + token_id] = signature
    if old:  # signatures of tokens that are gone, expired or not for signing
        changed = True
    return new if changed else None


class BootstrapSigner(Controller):
    name = "bootstrapsigner"
    event_source = "bootstrap-signer"
    workers = 1  # one key: upstream's queue serializes the ConfigMap and Secret triggers

    def setup(self) -> None:
        self.key = f"{CONFIGMAP_NAMESPACE}/{CLUSTER_INFO}"
        self.configmaps = self.ctx.informers.informer(R.CONFIGMAPS)
        self.secrets = self.ctx.informers.informer(R.SECRETS)
        self.configmaps.add_handler(self._on_configmap)
        self.secrets.add_handler(self._on_secret)

    def _on_configmap(self, event: str, _old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event == "DELETED" or new is None:
            return
        meta = new.get("metadata") or {}
        if meta.get("name") == CLUSTER_INFO and meta.get("namespace") == CONFIGMAP_NAMESPACE:
            self.enqueue(self.key)

    def _on_secret(self, _event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        obj = new if new is not None else old
        if obj is None or obj.get("type") != BOOTSTRAP_TOKEN_SECRET_TYPE:
            return
        if (obj.get("metadata") or {}).get("namespace") == TOKEN_NAMESPACE:
            self.enqueue(self.key)

    async def reconcile(self, key: str) -> float | None:
        configmap = self.configmaps.get(self.key)
        if configmap is None:
            return None
        tokens, expires_in = signing_tokens(self.secrets.list(TOKEN_NAMESPACE), self.ctx.clock.now())
        data = signed_data(dict(configmap.get("data") or {}), tokens)
        if data is not None:
            meta = configmap["metadata"]
            self.log.info("signing %s with %d bootstrap token(s)", self.key, len(tokens))
            # On a conflict or a deletion the informer brings the newer state, and another sync.
            with contextlib.suppress(errors.Conflict, errors.NotFound):
                await self.ctx.client.request(
                    "PUT",
                    R.CONFIGMAPS.url(meta.get("namespace"), meta["name"]),
                    body={**configmap, "data": data},
                )
        return expires_in
