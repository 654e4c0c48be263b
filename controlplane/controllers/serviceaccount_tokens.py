"""Tokens controller (upstream pkg/controller/serviceaccount/tokens_controller.go, controller name
`serviceaccount-token`): fills Secrets of type `kubernetes.io/service-account-token` with a legacy
token (issuer `kubernetes/serviceaccount`, no expiry), `ca.crt` and `namespace`, and deletes them
when their ServiceAccount is gone, which is what revokes their token.

Like kube-controller-manager it signs with --service-account-private-key-file; without a key the
controller does nothing, as upstream leaves it disabled.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from controlplane.api import errors
from controlplane.controllers.runtime import Controller, R

__all__ = ["SERVICE_ACCOUNT_TOKEN_TYPE", "LegacyTokenSigner", "TokensController"]

SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME_ANNOTATION = "kubernetes.io/service-account.name"
UID_ANNOTATION = "kubernetes.io/service-account.uid"
LEGACY_ISSUER = "kubernetes/serviceaccount"


class LegacyTokenSigner:
    """Upstream's JWTTokenGenerator with LegacyClaims: RS256, `kid` from the public key."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()

    @classmethod
    def from_file(cls, path: Path) -> LegacyTokenSigner:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError(f"{path}: the service account private key must be an RSA key")
        return cls(key)

    def token(self, namespace: str, sa_name: str, sa_uid: str, secret_name: str) -> str:
        claims = {
            "iss": LEGACY_ISSUER,
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/secret.name": secret_name,
            "kubernetes.io/serviceaccount/service-account.name": sa_name,
            "kubernetes.io/serviceaccount/service-account.uid": sa_uid,
            "sub": f"system:serviceaccount:{namespace}:{sa_name}",
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id, "typ": None})


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


class TokensController(Controller):
    name = "serviceaccount-token"
    workers = 1

    def setup(self) -> None:
        key_file = self.ctx.config.extra.get("service_account_private_key_file")
        ca_file = self.ctx.config.extra.get("root_ca_file")
        self.signer = LegacyTokenSigner.from_file(Path(key_file)) if key_file else None
        self.root_ca = Path(ca_file).read_bytes() if ca_file else b""
        if self.signer is None:
            self.log.info("no --service-account-private-key-file: legacy token Secrets are not populated")
            return
        self.accounts = self.ctx.informers.informer(R.SERVICEACCOUNTS)
        self.secrets = self.ctx.informers.informer(R.SECRETS)
        self.accounts.add_handler(self._on_account)
        self.secrets.add_handler(self._on_secret)

    def _on_account(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event != "DELETED":
            return
        gone = old or new
        if gone is None:
            return
        meta = gone["metadata"]
        for secret in self.secrets.list(meta.get("namespace", "")):
            if secret.get("type") == SERVICE_ACCOUNT_TOKEN_TYPE and self._annotations(secret).get(
                NAME_ANNOTATION
            ) == meta.get("name"):
                self.enqueue_obj(secret)

    def _on_secret(self, event: str, _old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event != "DELETED" and new is not None and new.get("type") == SERVICE_ACCOUNT_TOKEN_TYPE:
            self.enqueue_obj(new)

    @staticmethod
    def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
        annotations = obj.get("metadata", {}).get("annotations")
        return annotations if isinstance(annotations, Mapping) else {}

    async def _account(self, namespace: str, name: str, uid: str) -> dict[str, Any] | None:
        """The ServiceAccount the Secret names, from the cache or, on a miss, the API (a Secret
        created right after its ServiceAccount must not be deleted for our cache's lag)."""
        account = self.accounts.get(f"{namespace}/{name}")
        if account is None:
            try:
                account = await self.ctx.client.get(R.SERVICEACCOUNTS, name, namespace)
            except errors.NotFound:
                return None
        if uid and account["metadata"].get("uid") != uid:
            return None
        return account

    async def reconcile(self, key: str) -> float | None:
        if self.signer is None:
            return None
        secret = self.secrets.get(key)
        if secret is None or secret.get("type") != SERVICE_ACCOUNT_TOKEN_TYPE:
            return None
        meta = secret["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        namespace, name = meta.get("namespace", ""), meta["name"]
        annotations = self._annotations(secret)
        sa_name = annotations.get(NAME_ANNOTATION, "")
        if not sa_name:
            return None
        account = await self._account(namespace, sa_name, annotations.get(UID_ANNOTATION, ""))
        if account is None:
            self.log.info("deleting token Secret %s: its ServiceAccount %s is gone", key, sa_name)
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await self.ctx.client.delete(
                    R.SECRETS, name, namespace, options={"preconditions": {"uid": meta.get("uid", "")}}
                )
            return None
        data = secret.get("data") or {}
        wanted: dict[str, str] = {}
        if self.root_ca and data.get("ca.crt") != _b64(self.root_ca):
            wanted["ca.crt"] = _b64(self.root_ca)
        if data.get("namespace") != _b64(namespace.encode()):
            wanted["namespace"] = _b64(namespace.encode())
        if not data.get("token"):
            token = self.signer.token(namespace, sa_name, account["metadata"].get("uid", ""), name)
            wanted["token"] = _b64(token.encode())
        sa_uid = account["metadata"].get("uid", "")
        if not wanted and annotations.get(UID_ANNOTATION) == sa_uid:
            return None
        # An update from our copy, as upstream does (kube-controller-manager's role may update
        # Secrets, not patch them); its resourceVersion makes a concurrent change a Conflict,
        # which requeues the key.
        updated = copy.deepcopy(secret)
        updated.setdefault("apiVersion", "v1")
        updated.setdefault("kind", "Secret")
        updated["data"] = {**data, **wanted}
        updated["metadata"]["annotations"] = {**annotations, NAME_ANNOTATION: sa_name, UID_ANNOTATION: sa_uid}
        await self.ctx.client.request("PUT", R.SECRETS.url(namespace, name), body=updated)
        return None
