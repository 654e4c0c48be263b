"""Request authentication: who is calling, from their client certificate or bearer token.

An `Authenticator` returns the caller's `UserInfo`, `None` when the request carries no
credentials it understands, or raises `errors.Unauthorized` when it carries bad ones. This is
upstream's (user, ok, err) triple: a union tries every authenticator, the first user wins, and
only if none succeeded do errors turn into a 401. `require_user` is the pipeline's entry point:
it gives every client the same body upstream sends (`message: "Unauthorized"`), never the
reason, which goes to the log instead.

Bearer tokens go through `BearerTokenAuthenticator`, a union of token authenticators with
upstream's audience handling: the static token file here, ServiceAccount JWTs
(`serviceaccount_tokens`) and bootstrap tokens (`bootstrap_tokens`); `authn_endpoints.build`
assembles the server's. Every attempt is counted in `authentication_attempts` by result.

Anonymous access is limited to the health and version endpoints, like upstream's structured
authentication config with `anonymous.conditions` set to those paths: everything else without
credentials is a 401, not a 403 for `system:anonymous`.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import hmac
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from cryptography.x509.oid import NameOID

from controlplane.api import errors
from controlplane.apiserver import metrics, tls

__all__ = [
    "ALL_AUTHENTICATED",
    "ALL_UNAUTHENTICATED",
    "ANONYMOUS_AUTHENTICATION_PATHS",
    "ANONYMOUS_PATHS",
    "ANONYMOUS_USER",
    "CLUSTER_INFO_PATH",
    "AnonymousAuthenticator",
    "Authenticator",
    "BearerTokenAuthenticator",
    "ClientCertAuthenticator",
    "TokenAuthenticator",
    "TokenFileAuthenticator",
    "TokenResponse",
    "UnionAuthenticator",
    "UserInfo",
    "bearer_token",
    "require_user",
    "unauthorized",
    "user_from_certificate",
    "user_from_peercert",
]

log = logging.getLogger(__name__)

ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS_NAME = "system:anonymous"

# Exact paths, as upstream's anonymous conditions match them; `/version/` is in upstream's
# system:public-info-viewer role next to `/version`.
ANONYMOUS_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/version", "/version/"})
# kubeadm-style discovery: a joining node reads the cluster CA from this ConfigMap before it has
# credentials and checks it against its pinned hash. Anonymous here only gets past
# authentication; RBAC (kubeadm's bootstrap-signer-clusterinfo Role) still decides.
CLUSTER_INFO_PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
ANONYMOUS_AUTHENTICATION_PATHS = ANONYMOUS_PATHS | {CLUSTER_INFO_PATH}


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    # Left out of the hash (a dict is not hashable) but still part of equality.
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)


ANONYMOUS_USER = UserInfo(name=ANONYMOUS_NAME, groups=(ALL_UNAUTHENTICATED,))


def _authenticated(name: str, uid: str, groups: Iterable[str]) -> UserInfo:
    """Upstream's AuthenticatedGroupAdder: every authenticated user is in system:authenticated."""
    out = [g for g in groups if g]
    if ALL_AUTHENTICATED not in out:
        out.append(ALL_AUTHENTICATED)
    return UserInfo(name=name, uid=uid, groups=tuple(out))


def unauthorized() -> errors.Unauthorized:
    """The one 401 body clients ever see, as upstream's `responsewriters.Unauthorized` sends it."""
    return errors.Unauthorized(message="Unauthorized")


class Authenticator(Protocol):
    async def authenticate(self, request: web.Request) -> UserInfo | None: ...


@dataclass(frozen=True)
class TokenResponse:
    """What a token authenticator found: the user and the audiences the token is good for
    (empty: the authenticator does not know audiences, upstream's audience-agnostic ones)."""

    user: UserInfo
    audiences: tuple[str, ...] = ()
    # What the request's audit event should carry (upstream's authenticators add these to the
    # request context with audit.AddAuditAnnotation), e.g. a stale service account token.
    audit_annotations: tuple[tuple[str, str], ...] = ()


# Audit annotations that authentication adds, kept on the request until the audit middleware
# (which runs after authentication, and imports this module) starts the request's event.
AUDIT_ANNOTATIONS = web.RequestKey("authn_audit_annotations", dict[str, str])


def annotate_audit(request: web.Request, annotations: Iterable[tuple[str, str]]) -> None:
    """Keep `annotations` for the request's audit event; the first value of a key wins, as with
    upstream's AddAuditAnnotation."""
    kept = request.get(AUDIT_ANNOTATIONS)
    for key, value in annotations:
        if kept is None:
            kept = request[AUDIT_ANNOTATIONS] = {}
        kept.setdefault(key, value)


class TokenAuthenticator(Protocol):
    """Upstream's authenticator.Token: None when the token is not one it knows, a response when it
    authenticates, `errors.Unauthorized` when it is one of its own that does not."""

    async def authenticate_token(
        self, token: str, audiences: Sequence[str] | None = None
    ) -> TokenResponse | None: ...


# --- client certificates -----------------------------------------------------------------------


def _user(common_name: str, organizations: list[str]) -> UserInfo | None:
    # A certificate without a CN identifies no one, as upstream.
    return _authenticated(common_name, "", organizations) if common_name else None


@functools.lru_cache(maxsize=1024)
def user_from_certificate(verified: tls.VerifiedChain) -> UserInfo | None:
    """CN is the user, each O a group (upstream's CommonNameUserConversion), of a chain that
    verified: only `tls.ClientCAVerifier` makes a `VerifiedChain`, so this is the one way from a
    certificate to a user. As Go's pkix.Name, the last CN counts and non-string values are skipped.

    Cached by the chain's identity (a connection verifies once and keeps its chain): walking the
    subject costs more than the rest of authentication. UserInfo is frozen, so sharing is safe."""
    common_name = ""
    organizations: list[str] = []
    for attribute in verified.leaf.subject:
        if not isinstance(attribute.value, str):
            continue
        if attribute.oid == NameOID.COMMON_NAME:
            common_name = attribute.value
        elif attribute.oid == NameOID.ORGANIZATION_NAME:
            organizations.append(attribute.value)
    return _user(common_name, organizations)


def user_from_peercert(peercert: Mapping[str, Any] | None) -> UserInfo | None:
    """The same conversion over `SSLSocket.getpeercert()`'s dict, which Python fills only for a
    certificate that passed verification in the handshake (the stdlib listener)."""
    if not peercert:
        return None
    common_name = ""
    organizations: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                common_name = value
            elif key == "organizationName":
                organizations.append(value)
    return _user(common_name, organizations)


class ClientCertAuthenticator:
    """Identity from the TLS client certificate (upstream's x509 authenticator).

    On the pyOpenSSL listener the handshake accepts any certificate; it is verified here (once per
    connection, validity re-checked per request), and one that does not chain to the cluster CA
    is an error: a 401, unless another credential on the request authenticates (the union goes
    on), and never anonymous. On the stdlib listener the handshake already refused it.
    """

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        transport = request.transport
        if transport is None:
            return None
        presented = tls.client_certificate(transport)
        if presented is None:
            return user_from_peercert(transport.get_extra_info("peercert"))
        try:
            verified = presented.verified()
        except tls.CertificateRejected as exc:
            raise errors.Unauthorized(message=str(exc)) from None
        return user_from_certificate(verified)


# --- bearer tokens -----------------------------------------------------------------------------


def bearer_token(authorization: str | None) -> str | None:
    """The token from an `Authorization` header, parsed as upstream's bearertoken authenticator.

    None means "no bearer credentials" (absent header, another scheme, empty token).
    """
    auth = (authorization or "").strip()
    if not auth:
        return None
    parts = auth.split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer":
        return None
    return parts[1] or None


@dataclass(frozen=True)
class _TokenEntry:
    digest: bytes
    user: UserInfo


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenFileAuthenticator:
    """Static tokens from a CSV file, the format of kube-apiserver's `--token-auth-file`:
    `token,user,uid[,"group1,group2"]`, extra columns ignored.

    Tokens are held only as SHA-256 digests. A lookup hashes the presented token, finds the
    entry by digest and then compares digests with `hmac.compare_digest`, against a dummy when
    nothing matched, so a wrong token and an unknown one cost the same and nothing about a
    stored token leaks through timing.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._entries = self._load(path)
        self._dummy = _digest("")

    @staticmethod
    def _load(path: Path) -> dict[bytes, _TokenEntry]:
        entries: dict[bytes, _TokenEntry] = {}
        with path.open(newline="", encoding="utf-8") as handle:
            for record in csv.reader(handle):
                if not record:
                    continue  # blank line, which Go's csv reader skips too
                if len(record) < 3:
                    raise ValueError(
                        f"token file '{path}' must have at least 3 columns "
                        f"(token, user name, user uid), found {len(record)}"
                    )
                token, name, uid = record[0], record[1], record[2]
                if not token:
                    log.warning("empty token in token file %s ignored", path)
                    continue
                groups = record[3].split(",") if len(record) >= 4 else []
                digest = _digest(token)
                if digest in entries:
                    # Upstream keeps the later line too; say so without naming the token.
                    log.warning("duplicate token in token file %s: the later line wins", path)
                entries[digest] = _TokenEntry(digest, _authenticated(name, uid, groups))
        return entries

    def authenticate_token(self, token: str) -> UserInfo:
        presented = _digest(token)
        entry = self._entries.get(presented)
        expected = entry.digest if entry is not None else self._dummy
        matched = hmac.compare_digest(expected, presented)
        if entry is None or not matched:
            raise errors.Unauthorized(message="invalid bearer token")
        return entry.user

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return None
        return self.authenticate_token(token)

    def token_authenticator(self) -> TokenAuthenticator:
        """These tokens as one member of a `BearerTokenAuthenticator` (audience-agnostic)."""
        return _StaticTokens(self)


class _StaticTokens:
    def __init__(self, tokens: TokenFileAuthenticator) -> None:
        self._tokens = tokens

    async def authenticate_token(self, token: str, audiences: Sequence[str] | None = None) -> TokenResponse:
        return TokenResponse(self._tokens.authenticate_token(token))


class BearerTokenAuthenticator:
    """The bearer token of a request, tried on each token authenticator in turn (upstream's
    bearertoken authenticator over a token union). A token nobody accepts is an error ("invalid
    bearer token"); errors only count when no authenticator accepted the token.

    `api_audiences` are the server's own (the issuer by default): what a request's token must be
    good for, and what audience-agnostic authenticators (token file, bootstrap tokens) answer for.
    """

    def __init__(
        self, authenticators: Sequence[TokenAuthenticator], api_audiences: Sequence[str] = ()
    ) -> None:
        self._authenticators = tuple(authenticators)
        self._api_audiences = tuple(api_audiences)

    async def authenticate_token(self, token: str, audiences: Sequence[str] | None = None) -> TokenResponse:
        failures: list[str] = []
        requested = tuple(audiences) if audiences else self._api_audiences
        for authenticator in self._authenticators:
            try:
                response = await authenticator.authenticate_token(token, requested)
            except errors.Unauthorized as exc:
                failures.append(exc.message)
                continue
            if response is None:
                continue
            if not response.audiences and self._api_audiences:
                # Upstream's WrapAudienceAgnosticToken: good for the server's own audiences only.
                granted = tuple(a for a in requested if a in self._api_audiences)
                if not granted:
                    continue
                response = dataclasses.replace(response, audiences=granted)
            return response
        raise errors.Unauthorized(message="; ".join(failures) if failures else "invalid bearer token")

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return None
        response = await self.authenticate_token(token)
        annotate_audit(request, response.audit_annotations)
        return response.user


# --- composition -------------------------------------------------------------------------------


class UnionAuthenticator:
    """Try each in order; the first user wins. Errors only count if nobody succeeded, so a
    valid client certificate is not undone by a stale token sent alongside it (as upstream)."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        self._authenticators = tuple(authenticators)

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        failures: list[str] = []
        for authenticator in self._authenticators:
            try:
                user = await authenticator.authenticate(request)
            except errors.Unauthorized as exc:
                failures.append(exc.message)
                continue
            if user is not None:
                return user
        if failures:
            raise errors.Unauthorized(message="; ".join(failures))
        return None


class AnonymousAuthenticator:
    """`delegate`, falling back to `system:anonymous` on the public paths when the request had no
    credentials at all. Bad credentials stay an error even there (upstream's NewFailOnError)."""

    def __init__(
        self, delegate: Authenticator, paths: Collection[str] = ANONYMOUS_AUTHENTICATION_PATHS
    ) -> None:
        self._delegate = delegate
        self._paths = frozenset(paths)

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        user = await self._delegate.authenticate(request)
        if user is None and request.path in self._paths:
            return ANONYMOUS_USER
        return user


async def require_user(authenticator: Authenticator, request: web.Request) -> UserInfo:
    """The authentication step of the pipeline: a user, or the generic 401.

    Every attempt is counted by result as upstream's `authentication_attempts`: `error` when
    credentials were presented and refused, `failure` when there were none to try.
    """
    try:
        user = await authenticator.authenticate(request)
    except errors.Unauthorized as exc:
        # The reason is for operators; the client gets the same body whatever went wrong.
        log.info("unable to authenticate the request to %s: %s", request.path, exc.message)
        metrics.authentication_attempt("error")
        raise unauthorized() from None
    if user is None:
        metrics.authentication_attempt("failure")
        raise unauthorized()
    metrics.authentication_attempt("success")
    metrics.authenticated_user(user.name)
    return user
