"""Fakes shared by the authentication tests: an object getter over a dict and a signing key."""

from __future__ import annotations

import functools
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from controlplane.apiserver.serviceaccount_tokens import SigningKey, key_id

T0 = 1_800_000_000.0  # 2027-01-15, a fixed "now" for every token test


def rsa_key(seed: int = 0) -> SigningKey:
    """A 2048-bit key per seed, generated once per test session (key generation is slow)."""
    return _rsa_key(seed)


@functools.cache
def _rsa_key(seed: int) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(key, key_id(key.public_key()))


class Objects:
    """ObjectGetter over a dict keyed by (plural, namespace, name); counts reads."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.reads = 0

    def put(self, plural: str, namespace: str, name: str, uid: str, **extra: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {"metadata": {"name": name, "uid": uid, **extra.pop("metadata", {})}, **extra}
        if namespace:
            obj["metadata"]["namespace"] = namespace
        self.items[(plural, namespace, name)] = obj
        return obj

    def remove(self, plural: str, namespace: str, name: str) -> None:
        del self.items[(plural, namespace, name)]

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.items.get((plural, namespace, name))


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
