"""Bootstrap tokens: `<id>.<secret>` bearer tokens backed by `bootstrap-token-<id>` Secrets of type
`bootstrap.kubernetes.io/token` in kube-system (upstream's plugin/pkg/auth/authenticator/token/bootstrap
and k8s.io/cluster-bootstrap).

A token authenticates as `system:bootstrap:<id>` in `system:bootstrappers` plus the Secret's
`auth-extra-groups`, while the Secret exists, is not being deleted, is marked
`usage-bootstrap-authentication: "true"` and has not passed its `expiration`. The secret part is
compared in constant time, against a dummy when there is no such Secret, so an unknown token and a
wrong one cost the same.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from controlplane.apiserver.authn import ALL_AUTHENTICATED, TokenResponse, UserInfo

__all__ = [
    "BOOTSTRAP_DEFAULT_GROUP",
    "BOOTSTRAP_USER_PREFIX",
    "SECRET_TYPE",
    "TOKEN_SECRET_PREFIX",
    "BootstrapTokenAuthenticator",
    "expiration",
    "extra_groups",
    "parse_token",
    "secret_data",
]

log = logging.getLogger(__name__)

SECRET_TYPE = "bootstrap.kubernetes.io/token"
TOKEN_SECRET_PREFIX = "bootstrap-token-"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAP_DEFAULT_GROUP = "system:bootstrappers"
NAMESPACE = "kube-system"

KEY_TOKEN_ID = "token-id"
KEY_TOKEN_SECRET = "token-secret"
KEY_EXPIRATION = "expiration"
KEY_USAGE_AUTHENTICATION = "usage-bootstrap-authentication"
KEY_EXTRA_GROUPS = "auth-extra-groups"

_TOKEN = re.compile(r"\A([a-z0-9]{6})\.([a-z0-9]{16})\Z")
_GROUP_PATTERN = r"\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\Z"
_GROUP = re.compile(_GROUP_PATTERN)
_DUMMY_SECRET = b"0" * 16


def parse_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed bootstrap token, else None (upstream's ParseToken)."""
    found = _TOKEN.match(token)
    if found is None:
        return None
    return found.group(1), found.group(2)


def secret_data(secret: Mapping[str, Any], key: str) -> str:
    """A `data` value, decoded (a Secret as the API stores it holds base64)."""
    data = secret.get("data")
    if not isinstance(data, Mapping):
        return ""
    value = data.get(key)
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return ""


def expiration(secret: Mapping[str, Any], now: float) -> tuple[float, bool]:
    """(seconds left, expired), as upstream's GetExpiration: no expiration never expires, an
    unparseable one counts as expired."""
    value = secret_data(secret, KEY_EXPIRATION)
    if not value:
        return 0.0, False
    try:
        moment = _parse_rfc3339(value)
    except ValueError:
        log.info("unparseable expiration time (%s) in %s Secret; treating as expired", value, _name(secret))
        return 0.0, True
    left = moment - now
    if left <= 0:
        return 0.0, True
    return left, False


def _parse_rfc3339(value: str) -> float:
    # Go's time.RFC3339 requires the T, seconds and a zone (Z or ±hh:mm).
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", value):
        raise ValueError(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def extra_groups(secret: Mapping[str, Any]) -> list[str]:
    """system:bootstrappers plus `auth-extra-groups`, deduplicated and sorted (upstream's GetGroups);
    an invalid group name is a ValueError."""
    groups = {BOOTSTRAP_DEFAULT_GROUP}
    listed = secret_data(secret, KEY_EXTRA_GROUPS)
    if listed:
        for group in listed.split(","):
            if not _GROUP.match(group):
                raise ValueError(f"bootstrap group {group!r} is invalid (must match {_GROUP_PATTERN})")
            groups.add(group)
    return sorted(groups)


def _name(secret: Mapping[str, Any]) -> str:
    meta = secret.get("metadata")
    if not isinstance(meta, Mapping):
        return "?"
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class SecretGetter(Protocol):
    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None: ...


class BootstrapTokenAuthenticator:
    """Upstream's bootstrap TokenAuthenticator. Like upstream, a token that does not check out is
    "not mine" (None) rather than an error; the bearer authenticator turns that into a 401."""

    def __init__(self, secrets: SecretGetter, *, clock: Callable[[], float] = time.time) -> None:
        self._secrets = secrets
        self._clock = clock

    async def authenticate_token(
        self, token: str, audiences: Sequence[str] | None = None
    ) -> TokenResponse | None:
        parsed = parse_token(token)
        if parsed is None:
            return None
        token_id, token_secret = parsed
        secret = await self._secrets.get("secrets", NAMESPACE, TOKEN_SECRET_PREFIX + token_id)
        stored = secret_data(secret, KEY_TOKEN_SECRET).encode() if secret is not None else _DUMMY_SECRET
        matched = hmac.compare_digest(stored, token_secret.encode())
        if secret is None:
            return None
        meta = secret.get("metadata")
        if isinstance(meta, Mapping) and meta.get("deletionTimestamp"):
            log.info("bootstrap token Secret %s is deleted and awaiting removal", _name(secret))
            return None
        if secret.get("type") != SECRET_TYPE or not isinstance(secret.get("data"), Mapping):
            log.info("bootstrap token Secret %s has invalid type, expected %s", _name(secret), SECRET_TYPE)
            return None
        if not matched:
            log.info(
                "bootstrap token Secret %s has invalid value for key %s", _name(secret), KEY_TOKEN_SECRET
            )
            return None
        if secret_data(secret, KEY_TOKEN_ID) != token_id:
            log.info("bootstrap token Secret %s has invalid value for key %s", _name(secret), KEY_TOKEN_ID)
            return None
        if expiration(secret, self._clock())[1]:
            log.info("bootstrap token Secret %s has expired", _name(secret))
            return None
        if secret_data(secret, KEY_USAGE_AUTHENTICATION) != "true":
            log.info("bootstrap token Secret %s not marked %s=true", _name(secret), KEY_USAGE_AUTHENTICATION)
            return None
        try:
            groups = extra_groups(secret)
        except ValueError as exc:
            log.info(
                "bootstrap token Secret %s has invalid value for key %s: %s",
                _name(secret),
                KEY_EXTRA_GROUPS,
                exc,
            )
            return None
        return TokenResponse(
            UserInfo(name=BOOTSTRAP_USER_PREFIX + token_id, groups=(*groups, ALL_AUTHENTICATED))
        )
