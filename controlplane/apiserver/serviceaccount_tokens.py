"""ServiceAccount tokens: the signing key, the JWTs TokenRequest issues, and their validation.

Upstream's pkg/serviceaccount in Python. Bound tokens carry the claims of `claims.go` (iss, sub,
aud, exp, iat, nbf, jti and a `kubernetes.io` object naming the namespace, the ServiceAccount and
the Pod, Secret or Node the token is bound to, each with its UID), signed RS256 with a key kept
under the data directory whose `kid` is computed as upstream does (the SHA-256 of the DER public
key, base64url). Validation checks the signature, the time claims with go-jose's one-minute
leeway, the audience, and then that the ServiceAccount (and the bound object) still exists with
the UID the token names: deleting it revokes the token. Legacy tokens (issuer
`kubernetes/serviceaccount`, written into `kubernetes.io/service-account-token` Secrets by the
tokens controller) never expire and are valid while their Secret holds them.

The existence checks read through `ObjectCache`, a short-TTL cache over the object store, so a
busy client does not cost a storage read per request and revocation takes effect within the TTL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from controlplane.api import errors
from controlplane.api.resources import Registry
from controlplane.apiserver import metrics
from controlplane.apiserver.authn import ALL_AUTHENTICATED, TokenResponse, UserInfo
from controlplane.apiserver.pki import ensure_private_dir, write_private_file
from controlplane.apiserver.store import ObjectStore

__all__ = [
    "ALL_SERVICE_ACCOUNTS_GROUP",
    "CREDENTIAL_ID_KEY",
    "DEFAULT_ISSUER",
    "LEEWAY_SECONDS",
    "LEGACY_ISSUER",
    "LEGACY_TOKEN_LAST_USED_LABEL",
    "NODE_NAME_KEY",
    "NODE_UID_KEY",
    "POD_NAME_KEY",
    "POD_UID_KEY",
    "BoundRef",
    "ObjectCache",
    "ObjectGetter",
    "ServiceAccountTokenAuthenticator",
    "SigningKey",
    "TokenGenerator",
    "bound_claims",
    "ensure_signing_key",
    "key_id",
    "legacy_claims",
    "load_public_keys",
    "load_signing_key",
    "make_username",
    "service_account_groups",
    "split_username",
]

log = logging.getLogger(__name__)

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
# go-jose's jwt.DefaultLeeway, which upstream's validator uses for exp, nbf and iat.
LEEWAY_SECONDS = 60

SERVICE_ACCOUNT_USERNAME_PREFIX = "system:serviceaccount:"
ALL_SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
NODE_UID_KEY = "authentication.kubernetes.io/node-uid"
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"
STALE_TOKEN_ANNOTATION = "authentication.k8s.io/stale-token"  # an audit annotation

LEGACY_TOKEN_INVALID_SINCE_LABEL = "kubernetes.io/legacy-token-invalid-since"
LEGACY_TOKEN_LAST_USED_LABEL = "kubernetes.io/legacy-token-last-used"

# Upstream's JWT authenticator accepts these for RSA keys.
_RSA_ALGORITHMS = ["RS256", "RS384", "RS512"]
_EC_ALGORITHMS = ["ES256", "ES384", "ES512"]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
Clock = Callable[[], float]
# (namespace, name, uid, date): label a legacy token Secret as used on that day.
LastUsedWriter = Callable[[str, str, str, str], Awaitable[None]]


def make_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_USERNAME_PREFIX}{namespace}:{name}"


def split_username(username: str) -> tuple[str, str] | None:
    """(namespace, name) of `system:serviceaccount:<ns>:<name>`, or None (upstream's SplitUsername)."""
    if not username.startswith(SERVICE_ACCOUNT_USERNAME_PREFIX):
        return None
    parts = username[len(SERVICE_ACCOUNT_USERNAME_PREFIX) :].split(":")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return (ALL_SERVICE_ACCOUNTS_GROUP, f"{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}")


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    key_id: str


def key_id(public_key: PublicKey) -> str:
    """Upstream's keyIDFromPublicKey: base64url (unpadded) SHA-256 of the PKIX DER public key."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def ensure_signing_key(pki_dir: Path) -> tuple[Path, Path]:
    """`sa.key` and `sa.pub` under `pki_dir` (kubeadm's names), created on first start: the files
    kube-apiserver takes as --service-account-signing-key-file and --service-account-key-file."""
    key_path, pub_path = pki_dir / "sa.key", pki_dir / "sa.pub"
    ensure_private_dir(pki_dir)
    if not key_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_private_file(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ),
        )
        pub_path.unlink(missing_ok=True)
    if not pub_path.exists():
        private = load_signing_key(key_path).private_key
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        write_private_file(pub_path, public_pem, mode=0o644)
    return key_path, pub_path


def load_signing_key(path: Path) -> SigningKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{path}: the service account signing key must be an RSA private key")
    return SigningKey(key, key_id(key.public_key()))


def load_public_keys(paths: Iterable[Path]) -> list[PublicKey]:
    """Every public key in the PEM files (public keys, certificates or private keys), as upstream's
    --service-account-key-file reads them."""
    keys: list[PublicKey] = []
    for path in paths:
        data = path.read_bytes()
        for block in data.split(b"-----END ")[:-1]:
            start = block.rfind(b"-----BEGIN ")
            label = block[start + 11 : block.index(b"-----", start + 11)]
            pem = block[start:] + b"-----END " + label + b"-----\n"
            loaded: Any
            if label == b"CERTIFICATE":
                loaded = x509.load_pem_x509_certificate(pem).public_key()
            elif label.endswith(b"PRIVATE KEY"):
                loaded = serialization.load_pem_private_key(pem, password=None).public_key()
            else:
                loaded = serialization.load_pem_public_key(pem)
            if isinstance(loaded, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                keys.append(loaded)
        if not keys:
            raise ValueError(f"{path}: no RSA or ECDSA public key found")
    return keys


# --- claims -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoundRef:
    name: str
    uid: str


def _sorted(value: Any) -> Any:
    """Claims in sorted key order at every level: go-jose merges them through a Go map, whose JSON
    encoding is sorted, so upstream's tokens read this way."""
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value)}
    return value


def bound_claims(
    *,
    namespace: str,
    service_account: BoundRef,
    audiences: Sequence[str],
    expiration_seconds: int,
    now: float,
    pod: BoundRef | None = None,
    secret: BoundRef | None = None,
    node: BoundRef | None = None,
    jti: str | None = None,
    warn_after_seconds: int = 0,
) -> dict[str, Any]:
    """Upstream's serviceaccount.Claims (without `iss`, which the generator sets)."""
    if secret is not None and (pod is not None or node is not None):
        raise ValueError("internal error, token can only be bound to one object type")
    issued = int(now)
    kube: dict[str, Any] = {
        "namespace": namespace,
        "serviceaccount": {"name": service_account.name, "uid": service_account.uid},
    }
    if pod is not None:
        kube["pod"] = {"name": pod.name, "uid": pod.uid}
        if node is not None:  # the pod's node, when known (ServiceAccountTokenPodNodeInfo)
            kube["node"] = {"name": node.name, "uid": node.uid}
    elif secret is not None:
        kube["secret"] = {"name": secret.name, "uid": secret.uid}
    elif node is not None:
        kube["node"] = {"name": node.name, "uid": node.uid}
    if warn_after_seconds:
        kube["warnafter"] = issued + int(warn_after_seconds)
    claims: dict[str, Any] = {
        "aud": list(audiences),
        "exp": issued + int(expiration_seconds),
        "iat": issued,
        "jti": jti if jti is not None else str(uuid.uuid4()),
        "kubernetes.io": kube,
        "nbf": issued,
        "sub": make_username(namespace, service_account.name),
    }
    return claims


def legacy_claims(namespace: str, sa_name: str, sa_uid: str, secret_name: str) -> dict[str, Any]:
    """Upstream's LegacyClaims (without `iss`)."""
    return {
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/secret.name": secret_name,
        "kubernetes.io/serviceaccount/service-account.name": sa_name,
        "kubernetes.io/serviceaccount/service-account.uid": sa_uid,
        "sub": make_username(namespace, sa_name),
    }


class TokenGenerator:
    """Signs claims as `iss`, RS256, with the key's `kid` in the header (upstream's JWTTokenGenerator)."""

    def __init__(self, issuer: str, key: SigningKey) -> None:
        self.issuer = issuer
        self._key = key

    def generate(self, claims: Mapping[str, Any]) -> str:
        payload = _sorted({**claims, "iss": self.issuer})
        return jwt.encode(
            payload,
            self._key.private_key,
            algorithm="RS256",
            headers={"kid": self._key.key_id, "typ": None},
        )


# --- object lookups -----------------------------------------------------------------------------


class ObjectGetter(Protocol):
    """A core/v1 object by plural, namespace and name, or None (upstream's ServiceAccountTokenGetter)."""

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None: ...


class ObjectCache:
    """Objects read through the store, remembered for `ttl` seconds (misses too).

    Token validation looks up the ServiceAccount, and the Pod/Secret/Node a token is bound to, on
    every request; upstream reads informer caches for this. A short TTL keeps a busy client from
    costing a storage read per request while a deletion revokes its tokens within `ttl`.
    """

    def __init__(
        self,
        store: ObjectStore,
        registry: Registry,
        *,
        ttl: float = 1.0,
        clock: Clock = time.monotonic,
        max_entries: int = 10000,
    ) -> None:
        self._store = store
        self._registry = registry
        self._ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[tuple[str, str, str], tuple[float, dict[str, Any] | None]] = {}

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A core/v1 object (`plural`: serviceaccounts, pods, secrets, nodes) or None."""
        key = (plural, namespace, name)
        now = self._clock()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        info = self._registry.get("", "v1", plural)
        if info is None:
            return None
        obj = await self._store.get_or_none(info, namespace if info.namespaced else "", name)
        if len(self._entries) >= self._max_entries:
            self._evict(now)
        self._entries[key] = (now, obj)
        return obj

    def invalidate(self) -> None:
        self._entries.clear()

    def _evict(self, now: float) -> None:
        stale = [k for k, (at, _) in self._entries.items() if now - at >= self._ttl]
        for k in stale:
            del self._entries[k]
        if len(self._entries) >= self._max_entries:
            self._entries.clear()


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


# --- validation ---------------------------------------------------------------------------------


class _Invalid(Exception):
    """A token of ours that does not authenticate; the message is upstream's."""


def _unverified_payload(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def _audiences(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [a for a in value if isinstance(a, str)]
    return []


def _intersect(a: Sequence[str], b: Sequence[str]) -> list[str]:
    wanted = set(b)
    return [x for x in a if x in wanted]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _staleness(claims: Mapping[str, Any], now: float) -> tuple[tuple[str, str], ...]:
    """Upstream's check of the `warnafter` claim of an extended projected token (claims.go): used
    before it, the token counts as valid; used after it, as stale, and the request's audit event
    gets `authentication.k8s.io/stale-token`, so that operators can find the clients that never
    reread their token. Tokens without the claim count as neither."""
    kube = claims.get("kubernetes.io")
    warn_after = _number(kube.get("warnafter")) if isinstance(kube, Mapping) else None
    if not warn_after:
        return ()
    if now <= warn_after:
        metrics.SERVICE_ACCOUNT_VALID_TOKENS.inc()
        return ()
    metrics.SERVICE_ACCOUNT_STALE_TOKENS.inc()
    detail = f"subject: {claims.get('sub', '')}, seconds after warning threshold: {int(now - warn_after)}"
    log.info("stale token used: %s", detail)
    return ((STALE_TOKEN_ANNOTATION, detail),)


def _deleted_before(obj: Mapping[str, Any], cutoff: float) -> bool:
    stamp = _meta(obj).get("deletionTimestamp")
    if not isinstance(stamp, str):
        return False
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return True
    return moment < cutoff


def _ref(value: Any) -> BoundRef | None:
    if not isinstance(value, Mapping):
        return None
    name, uid = value.get("name", ""), value.get("uid", "")
    return BoundRef(name if isinstance(name, str) else "", uid if isinstance(uid, str) else "")


class ServiceAccountTokenAuthenticator:
    """Upstream's JWTTokenAuthenticator with the bound (`issuers`) and legacy validators.

    Tokens whose `iss` is not one of ours are not ours: None, so the next authenticator may try.
    A token of ours that fails (bad signature, expired, wrong audience, revoked) raises
    `errors.Unauthorized` with upstream's reason, which goes to the log and TokenReview only.
    """

    def __init__(
        self,
        *,
        issuers: Sequence[str],
        public_keys: Sequence[PublicKey],
        api_audiences: Sequence[str],
        objects: ObjectGetter,
        clock: Clock = time.time,
        legacy: bool = True,
        last_used_writer: LastUsedWriter | None = None,
    ) -> None:
        self._issuers = frozenset(issuers)
        self._keys = list(public_keys)
        self._api_audiences = list(api_audiences)
        self._objects = objects
        self._clock = clock
        self._legacy = legacy
        self._last_used_writer = last_used_writer

    async def authenticate_token(
        self, token: str, audiences: Sequence[str] | None = None
    ) -> TokenResponse | None:
        unverified = _unverified_payload(token)
        if unverified is None:
            return None
        issuer = unverified.get("iss")
        legacy = issuer == LEGACY_ISSUER and self._legacy
        if not legacy and (not isinstance(issuer, str) or issuer not in self._issuers):
            return None
        claims = self._verify(token)
        token_audiences = _audiences(claims.get("aud")) or self._api_audiences
        requested = list(audiences) if audiences else self._api_audiences
        granted = _intersect(token_audiences, requested)
        if not granted and self._api_audiences:
            raise errors.Unauthorized(
                message=f"token audiences {_go_quote(token_audiences)} is invalid for the target audiences "
                f"{_go_quote(requested)}"
            )
        now = self._clock()
        try:
            if legacy:
                user = await self._validate_legacy(token, claims)
            else:
                user = await self._validate_bound(claims, now)
        except _Invalid as exc:
            raise errors.Unauthorized(message=str(exc)) from None
        return TokenResponse(user=user, audiences=tuple(granted), audit_annotations=_staleness(claims, now))

    def _verify(self, token: str) -> dict[str, Any]:
        failures: list[str] = []
        for key in self._keys:
            algorithms = _RSA_ALGORITHMS if isinstance(key, rsa.RSAPublicKey) else _EC_ALGORITHMS
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=algorithms,
                    # The time claims and the audience are checked below, with the injected clock
                    # and upstream's rules; here only the signature.
                    options={
                        "verify_signature": True,
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                        "verify_aud": False,
                        "verify_iss": False,
                        "verify_sub": False,
                        "verify_jti": False,
                        "require": [],
                    },
                )
            except jwt.InvalidTokenError as exc:
                failures.append(str(exc) or type(exc).__name__)
                continue
            return claims
        raise errors.Unauthorized(message=", ".join(failures) or "no service account public key configured")

    def _check_times(self, claims: Mapping[str, Any], now: float) -> None:
        """go-jose's Claims.Validate with its default leeway, in upstream's words."""
        for name in ("exp", "nbf", "iat"):
            if name in claims and _number(claims[name]) is None:
                raise _Invalid(
                    "service account token claims could not be validated due to unexpected validation error"
                )
        exp, nbf, iat = _number(claims.get("exp")), _number(claims.get("nbf")), _number(claims.get("iat"))
        if nbf is not None and now + LEEWAY_SECONDS < nbf:
            raise _Invalid("service account token is not valid yet")
        if exp is not None and now - LEEWAY_SECONDS > exp:
            raise _Invalid("service account token has expired")
        if iat is not None and now + LEEWAY_SECONDS < iat:
            raise _Invalid(
                "service account token claims could not be validated due to unexpected validation error"
            )

    async def _validate_bound(self, claims: Mapping[str, Any], now: float) -> UserInfo:
        self._check_times(claims, now)
        kube = claims.get("kubernetes.io")
        kube = kube if isinstance(kube, Mapping) else {}
        namespace = kube.get("namespace", "")
        namespace = namespace if isinstance(namespace, str) else ""
        sa_ref = _ref(kube.get("serviceaccount")) or BoundRef("", "")
        pod_ref, secret_ref, node_ref = (
            _ref(kube.get("pod")),
            _ref(kube.get("secret")),
            _ref(kube.get("node")),
        )
        cutoff = now - LEEWAY_SECONDS
        account = await self._objects.get("serviceaccounts", namespace, sa_ref.name) if sa_ref.name else None
        if account is None:
            raise _Invalid(f'serviceaccounts "{sa_ref.name}" not found')
        if _deleted_before(account, cutoff):
            raise _Invalid(f"service account {namespace}/{sa_ref.name} has been deleted")
        if _meta(account).get("uid") != sa_ref.uid:
            raise _Invalid(
                f"service account UID ({_meta(account).get('uid', '')}) does not match claim ({sa_ref.uid})"
            )
        if secret_ref is not None:
            await self._check_bound("secrets", namespace, secret_ref, cutoff, "secret")
        extra: dict[str, tuple[str, ...]] = {}
        if pod_ref is not None:
            await self._check_bound("pods", namespace, pod_ref, cutoff, "pod")
            extra[POD_NAME_KEY] = (pod_ref.name,)
            extra[POD_UID_KEY] = (pod_ref.uid,)
        if node_ref is not None:
            if pod_ref is None:
                # A token bound to the Node itself is checked against it; a pod-bound token only
                # reports the pod's node.
                await self._check_bound("nodes", "", node_ref, cutoff, "node")
            extra[NODE_NAME_KEY] = (node_ref.name,)
            if node_ref.uid:
                extra[NODE_UID_KEY] = (node_ref.uid,)
        jti = claims.get("jti")
        if isinstance(jti, str) and jti:
            extra[CREDENTIAL_ID_KEY] = (f"JTI={jti}",)
        return _service_account_user(namespace, sa_ref.name, sa_ref.uid, extra)

    async def _check_bound(
        self, plural: str, namespace: str, ref: BoundRef, cutoff: float, noun: str
    ) -> None:
        obj = await self._objects.get(plural, namespace, ref.name) if ref.name else None
        if obj is None or _deleted_before(obj, cutoff):
            raise _Invalid("service account token has been invalidated")
        uid = _meta(obj).get("uid", "")
        if uid != ref.uid:
            raise _Invalid(f"{noun} UID ({uid}) does not match service account {noun} ref claim ({ref.uid})")

    async def _validate_legacy(self, token: str, claims: Mapping[str, Any]) -> UserInfo:
        def claim(name: str) -> str:
            value = claims.get(name, "")
            return value if isinstance(value, str) else ""

        subject = claim("sub")
        namespace = claim("kubernetes.io/serviceaccount/namespace")
        secret_name = claim("kubernetes.io/serviceaccount/secret.name")
        sa_name = claim("kubernetes.io/serviceaccount/service-account.name")
        sa_uid = claim("kubernetes.io/serviceaccount/service-account.uid")
        for value, what in (
            (subject, "sub"),
            (namespace, "namespace"),
            (secret_name, "secretName"),
            (sa_name, "serviceAccountName"),
            (sa_uid, "serviceAccountUID"),
        ):
            if not value:
                raise _Invalid(f"{what} claim is missing")
        if split_username(subject) != (namespace, sa_name):
            raise _Invalid("sub claim is invalid")
        secret = await self._objects.get("secrets", namespace, secret_name)
        if secret is None or _meta(secret).get("deletionTimestamp"):
            raise _Invalid("Token has been invalidated")
        labels = _meta(secret).get("labels")
        if isinstance(labels, Mapping) and labels.get(LEGACY_TOKEN_INVALID_SINCE_LABEL):
            raise _Invalid("Token has been invalidated")
        data = secret.get("data")
        stored = data.get("token", "") if isinstance(data, Mapping) else ""
        try:
            stored_bytes = base64.b64decode(stored) if isinstance(stored, str) else b""
        except (binascii.Error, ValueError):
            stored_bytes = b""
        if not hmac.compare_digest(stored_bytes, token.encode()):
            raise _Invalid("Token does not match server's copy")
        account = await self._objects.get("serviceaccounts", namespace, sa_name)
        if account is None:
            raise _Invalid(f'serviceaccounts "{sa_name}" not found')
        if _meta(account).get("deletionTimestamp"):
            raise _Invalid(f"ServiceAccount {namespace}/{sa_name} has been deleted")
        if _meta(account).get("uid") != sa_uid:
            raise _Invalid(
                f"ServiceAccount UID ({_meta(account).get('uid', '')}) does not match claim ({sa_uid})"
            )
        await self._track_last_used(secret, labels if isinstance(labels, Mapping) else {})
        metrics.SERVICE_ACCOUNT_LEGACY_TOKENS.inc()
        return _service_account_user(namespace, sa_name, sa_uid, {})

    async def _track_last_used(self, secret: Mapping[str, Any], labels: Mapping[str, Any]) -> None:
        """Upstream's legacy token tracking: the Secret carries the day it was last used, written at
        most once a day, so operators can find legacy tokens nobody uses before removing them."""
        if self._last_used_writer is None:
            return
        now = datetime.fromtimestamp(self._clock(), UTC)
        today, tomorrow = now.strftime("%Y-%m-%d"), (now + timedelta(days=1)).strftime("%Y-%m-%d")
        if labels.get(LEGACY_TOKEN_LAST_USED_LABEL) in (today, tomorrow):
            return
        meta = _meta(secret)
        try:
            await self._last_used_writer(
                str(meta.get("namespace", "")), str(meta.get("name", "")), str(meta.get("uid", "")), today
            )
        except Exception as exc:
            # Tracking never fails the request; upstream only logs it too.
            log.warning(
                "failed to label legacy service account token %s with last-used date: %s",
                meta.get("name"),
                exc,
            )


def _service_account_user(
    namespace: str, name: str, uid: str, extra: Mapping[str, tuple[str, ...]]
) -> UserInfo:
    """ServiceAccountInfo.UserInfo() plus the AuthenticatedGroupAdder."""
    return UserInfo(
        name=make_username(namespace, name),
        uid=uid,
        groups=(*service_account_groups(namespace), ALL_AUTHENTICATED),
        extra=dict(extra),
    )


def _go_quote(values: Sequence[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"
