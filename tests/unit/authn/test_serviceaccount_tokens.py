"""ServiceAccount tokens: claims as upstream's claims.go, signing (kid, header), and validation with
an injected clock: expiry with go-jose's leeway, audiences, signature, revocation by deletion."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from controlplane.api import errors
from controlplane.apiserver import metrics
from controlplane.apiserver.serviceaccount_tokens import (
    CREDENTIAL_ID_KEY,
    DEFAULT_ISSUER,
    LEGACY_ISSUER,
    LEGACY_TOKEN_LAST_USED_LABEL,
    NODE_NAME_KEY,
    NODE_UID_KEY,
    POD_NAME_KEY,
    POD_UID_KEY,
    BoundRef,
    ServiceAccountTokenAuthenticator,
    TokenGenerator,
    bound_claims,
    ensure_signing_key,
    key_id,
    legacy_claims,
    load_public_keys,
    load_signing_key,
    split_username,
)

from .helpers import T0, Clock, Objects, rsa_key

SA = BoundRef("bob", "uid-bob")


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def decode(part: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return data

    header, payload, _ = token.split(".")
    return decode(header), decode(payload)


def _raw_payload(token: str) -> bytes:
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.fixture
def objects() -> Objects:
    found = Objects()
    found.put("serviceaccounts", "ns", "bob", "uid-bob")
    found.put("pods", "ns", "web", "uid-web", spec={"serviceAccountName": "bob", "nodeName": "n1"})
    found.put("secrets", "ns", "s", "uid-s")
    found.put("nodes", "", "n1", "uid-n1")
    return found


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _authn(objects: Objects, clock: Clock, **kw: Any) -> ServiceAccountTokenAuthenticator:
    return ServiceAccountTokenAuthenticator(
        issuers=kw.pop("issuers", [DEFAULT_ISSUER]),
        public_keys=kw.pop("keys", [rsa_key().private_key.public_key()]),
        api_audiences=kw.pop("api_audiences", [DEFAULT_ISSUER]),
        objects=objects,
        clock=clock,
        **kw,
    )


def _token(claims: dict[str, Any], *, seed: int = 0, issuer: str = DEFAULT_ISSUER) -> str:
    return TokenGenerator(issuer, rsa_key(seed)).generate(claims)


def _claims(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "namespace": "ns",
        "service_account": SA,
        "audiences": [DEFAULT_ISSUER],
        "expiration_seconds": 3600,
        "now": T0,
        "jti": "the-jti",
    }
    args.update(kw)
    return bound_claims(**args)


# --- claims and signing -------------------------------------------------------------------------


def test_bound_claims_are_upstreams() -> None:
    claims = _claims(pod=BoundRef("web", "uid-web"), node=BoundRef("n1", "uid-n1"))
    token = _token(claims)
    header, payload = _parts(token)
    assert header == {"alg": "RS256", "kid": rsa_key().key_id}
    assert payload == {
        "aud": [DEFAULT_ISSUER],
        "exp": int(T0) + 3600,
        "iat": int(T0),
        "iss": DEFAULT_ISSUER,
        "jti": "the-jti",
        "kubernetes.io": {
            "namespace": "ns",
            "node": {"name": "n1", "uid": "uid-n1"},
            "pod": {"name": "web", "uid": "uid-web"},
            "serviceaccount": {"name": "bob", "uid": "uid-bob"},
        },
        "nbf": int(T0),
        "sub": "system:serviceaccount:ns:bob",
    }
    # go-jose marshals the merged claims through a Go map: keys sorted at every level.
    raw = _raw_payload(token)
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()


def test_secret_and_node_bindings() -> None:
    assert _claims(secret=BoundRef("s", "u"))["kubernetes.io"]["secret"] == {"name": "s", "uid": "u"}
    assert "pod" not in _claims(secret=BoundRef("s", "u"))["kubernetes.io"]
    assert _claims(node=BoundRef("n", "u"))["kubernetes.io"]["node"] == {"name": "n", "uid": "u"}
    with pytest.raises(ValueError, match="one object type"):
        _claims(secret=BoundRef("s", "u"), pod=BoundRef("p", "u"))
    # Every token gets its own jti unless one is given.
    first, second = _claims(jti=None)["jti"], _claims(jti=None)["jti"]
    assert first != second and len(first) == 36


def test_key_id_is_sha256_of_the_der_public_key() -> None:
    public = rsa_key().private_key.public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert key_id(public) == expected
    assert "=" not in expected and len(expected) == 43


def test_signing_key_created_once_and_reloaded(tmp_path: Path) -> None:
    key_path, pub_path = ensure_signing_key(tmp_path / "pki")
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    first = load_signing_key(key_path)
    assert ensure_signing_key(tmp_path / "pki") == (key_path, pub_path)
    assert load_signing_key(key_path).key_id == first.key_id  # not regenerated
    assert [key_id(k) for k in load_public_keys([pub_path])] == [first.key_id]
    # A private key file and a bundle of several keys both verify.
    assert [key_id(k) for k in load_public_keys([key_path])] == [first.key_id]
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pub_path.read_bytes() + key_path.read_bytes())
    assert len(load_public_keys([bundle])) == 2


def test_split_username() -> None:
    assert split_username("system:serviceaccount:ns:bob") == ("ns", "bob")
    for bad in (
        "system:serviceaccount:ns",
        "system:serviceaccount::bob",
        "alice",
        "system:serviceaccount:a:b:c",
    ):
        assert split_username(bad) is None


# --- validation ----------------------------------------------------------------------------------


async def test_valid_token_gives_the_service_account_user(objects: Objects, clock: Clock) -> None:
    token = _token(_claims(pod=BoundRef("web", "uid-web"), node=BoundRef("n1", "uid-n1")))
    response = await _authn(objects, clock).authenticate_token(token)
    assert response is not None
    assert response.audiences == (DEFAULT_ISSUER,)
    user = response.user
    assert user.name == "system:serviceaccount:ns:bob"
    assert user.uid == "uid-bob"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated")
    assert user.extra == {
        POD_NAME_KEY: ("web",),
        POD_UID_KEY: ("uid-web",),
        NODE_NAME_KEY: ("n1",),
        NODE_UID_KEY: ("uid-n1",),
        CREDENTIAL_ID_KEY: ("JTI=the-jti",),
    }


async def test_expiry_honours_the_leeway(objects: Objects, clock: Clock) -> None:
    auth = _authn(objects, clock)
    token = _token(_claims(expiration_seconds=600))
    clock.now = T0 + 600 + 60  # within go-jose's one-minute leeway
    assert await auth.authenticate_token(token) is not None
    clock.now = T0 + 600 + 61
    with pytest.raises(errors.Unauthorized, match="service account token has expired"):
        await auth.authenticate_token(token)


async def test_not_yet_valid_and_issued_in_the_future(objects: Objects, clock: Clock) -> None:
    auth = _authn(objects, clock)
    clock.now = T0 - 61
    with pytest.raises(errors.Unauthorized, match="not valid yet"):
        await auth.authenticate_token(_token(_claims()))
    claims = _claims()
    claims["nbf"] = int(T0) - 1000
    with pytest.raises(errors.Unauthorized, match="could not be validated"):
        await auth.authenticate_token(_token(claims))  # iat in the future
    clock.now = T0 - 59
    assert await auth.authenticate_token(_token(_claims())) is not None


async def test_wrong_signature_and_foreign_issuer(objects: Objects, clock: Clock) -> None:
    auth = _authn(objects, clock)
    other_key = _token(_claims(), seed=1)
    with pytest.raises(errors.Unauthorized, match="Signature verification failed"):
        await auth.authenticate_token(other_key)
    # Tampering with the payload breaks the signature too.
    header, _, signature = _token(_claims()).split(".")
    forged = dict(_claims(), sub="system:serviceaccount:kube-system:admin")
    body = base64.urlsafe_b64encode(json.dumps({**forged, "iss": DEFAULT_ISSUER}).encode()).rstrip(b"=")
    with pytest.raises(errors.Unauthorized):
        await auth.authenticate_token(f"{header}.{body.decode()}.{signature}")
    # Someone else's issuer: not ours to judge.
    assert await auth.authenticate_token(_token(_claims(), issuer="https://elsewhere")) is None
    # An "alg: none" token with our issuer is refused.
    unsigned = jwt.encode({**_claims(), "iss": DEFAULT_ISSUER}, None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(errors.Unauthorized):
        await auth.authenticate_token(unsigned)
    # A key listed for verification but not signing still verifies (key rotation).
    rotated = _authn(
        objects, clock, keys=[rsa_key(1).private_key.public_key(), rsa_key().private_key.public_key()]
    )
    assert await rotated.authenticate_token(other_key) is not None


async def test_audiences(objects: Objects, clock: Clock) -> None:
    auth = _authn(objects, clock)
    vault = _token(_claims(audiences=["vault"]))
    with pytest.raises(errors.Unauthorized, match="token audiences"):
        await auth.authenticate_token(vault)  # a request to the API wants the API's audience
    response = await auth.authenticate_token(vault, ["vault", "other"])
    assert response is not None and response.audiences == ("vault",)
    both = _token(_claims(audiences=["vault", DEFAULT_ISSUER]))
    response = await auth.authenticate_token(both)
    assert response is not None and response.audiences == (DEFAULT_ISSUER,)


async def test_revocation_by_deletion_or_recreation(objects: Objects, clock: Clock) -> None:
    auth = _authn(objects, clock)
    plain = _token(_claims())
    pod_bound = _token(_claims(pod=BoundRef("web", "uid-web")))
    secret_bound = _token(_claims(secret=BoundRef("s", "uid-s")))
    node_bound = _token(_claims(node=BoundRef("n1", "uid-n1")))
    for token in (plain, pod_bound, secret_bound, node_bound):
        assert await auth.authenticate_token(token) is not None

    objects.remove("pods", "ns", "web")
    with pytest.raises(errors.Unauthorized, match="invalidated"):
        await auth.authenticate_token(pod_bound)
    objects.put("pods", "ns", "web", "uid-web-2")
    with pytest.raises(errors.Unauthorized, match=r"pod UID \(uid-web-2\) does not match"):
        await auth.authenticate_token(pod_bound)
    objects.remove("secrets", "ns", "s")
    with pytest.raises(errors.Unauthorized, match="invalidated"):
        await auth.authenticate_token(secret_bound)
    objects.remove("nodes", "", "n1")
    with pytest.raises(errors.Unauthorized, match="invalidated"):
        await auth.authenticate_token(node_bound)
    assert await auth.authenticate_token(plain) is not None

    objects.put(
        "serviceaccounts", "ns", "bob", "uid-bob", metadata={"deletionTimestamp": "2027-01-15T07:58:00Z"}
    )
    clock.now = T0
    # Being deleted for more than the leeway counts as deleted.
    with pytest.raises(errors.Unauthorized, match="has been deleted"):
        await auth.authenticate_token(plain)
    objects.put("serviceaccounts", "ns", "bob", "uid-bob-2")
    with pytest.raises(errors.Unauthorized, match="does not match claim"):
        await auth.authenticate_token(plain)
    objects.remove("serviceaccounts", "ns", "bob")
    with pytest.raises(errors.Unauthorized, match='serviceaccounts "bob" not found'):
        await auth.authenticate_token(plain)


def _legacy(objects: Objects, *, seed: int = 0) -> str:
    token = TokenGenerator(LEGACY_ISSUER, rsa_key(seed)).generate(
        legacy_claims("ns", "bob", "uid-bob", "bob-token")
    )
    objects.put(
        "secrets",
        "ns",
        "bob-token",
        "uid-secret",
        type="kubernetes.io/service-account-token",
        data={"token": base64.b64encode(token.encode()).decode()},
    )
    return token


async def test_legacy_tokens(objects: Objects, clock: Clock) -> None:
    auth = _authn(objects, clock)
    token = _legacy(objects)
    _, payload = _parts(token)
    assert payload == {
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": "ns",
        "kubernetes.io/serviceaccount/secret.name": "bob-token",
        "kubernetes.io/serviceaccount/service-account.name": "bob",
        "kubernetes.io/serviceaccount/service-account.uid": "uid-bob",
        "sub": "system:serviceaccount:ns:bob",
    }
    clock.now = T0 + 10 * 365 * 86400  # no expiry
    legacy_used = metrics.SERVICE_ACCOUNT_LEGACY_TOKENS._value.get()
    response = await auth.authenticate_token(token)
    assert response is not None
    assert response.user.name == "system:serviceaccount:ns:bob" and response.user.extra == {}
    assert metrics.SERVICE_ACCOUNT_LEGACY_TOKENS._value.get() == legacy_used + 1
    # Used today: the Secret is labelled once a day (upstream's legacy token tracking).
    written: list[tuple[str, str, str, str]] = []

    async def writer(namespace: str, name: str, uid: str, day: str) -> None:
        written.append((namespace, name, uid, day))
        objects.items[("secrets", namespace, name)]["metadata"]["labels"] = {
            LEGACY_TOKEN_LAST_USED_LABEL: day
        }

    tracking = _authn(objects, clock, last_used_writer=writer)
    for _ in range(3):
        assert await tracking.authenticate_token(token) is not None
    assert written == [("ns", "bob-token", "uid-secret", "2037-01-12")]

    async def broken(namespace: str, name: str, uid: str, day: str) -> None:
        raise errors.Conflict(message="the Secret was replaced")

    clock.now += 2 * 86400
    assert await _authn(objects, clock, last_used_writer=broken).authenticate_token(token) is not None
    # The Secret holding another token: this one no longer matches the server's copy.
    _legacy(objects, seed=1)
    with pytest.raises(errors.Unauthorized, match="does not match server's copy"):
        await auth.authenticate_token(token)
    token = _legacy(objects)
    objects.remove("secrets", "ns", "bob-token")
    with pytest.raises(errors.Unauthorized, match="Token has been invalidated"):
        await auth.authenticate_token(token)
    token = _legacy(objects)
    objects.remove("serviceaccounts", "ns", "bob")
    with pytest.raises(errors.Unauthorized, match="not found"):
        await auth.authenticate_token(token)
    # Legacy tokens can be switched off.
    assert await _authn(objects, clock, legacy=False).authenticate_token(token) is None


async def test_legacy_claims_are_required(objects: Objects, clock: Clock) -> None:
    auth = _authn(objects, clock)
    claims = legacy_claims("ns", "bob", "uid-bob", "bob-token")
    for missing, message in (
        ("kubernetes.io/serviceaccount/namespace", "namespace claim is missing"),
        ("kubernetes.io/serviceaccount/service-account.uid", "serviceAccountUID claim is missing"),
    ):
        partial = {k: v for k, v in claims.items() if k != missing}
        with pytest.raises(errors.Unauthorized, match=message):
            await auth.authenticate_token(TokenGenerator(LEGACY_ISSUER, rsa_key()).generate(partial))
    wrong_sub = dict(claims, sub="system:serviceaccount:other:bob")
    with pytest.raises(errors.Unauthorized, match="sub claim is invalid"):
        await auth.authenticate_token(TokenGenerator(LEGACY_ISSUER, rsa_key()).generate(wrong_sub))


async def test_garbage_is_not_a_token(objects: Objects, clock: Clock) -> None:
    auth = _authn(objects, clock)
    for garbage in ("", "abc", "a.b.c", "e30.e30.", "abcdef.0123456789abcdef", "x" * 5000, "...."):
        assert await auth.authenticate_token(garbage) is None
    assert objects.reads == 0


async def test_projected_tokens_used_past_warnafter_are_counted_stale(objects: Objects, clock: Clock) -> None:
    """Upstream's serviceaccount_{valid,stale,legacy}_tokens_total: the kubelet's extended token
    (a year, `warnafter` at the hour it asked for) is stale once used past that hour."""

    def counts() -> tuple[float, float]:
        return (
            metrics.SERVICE_ACCOUNT_VALID_TOKENS._value.get(),
            metrics.SERVICE_ACCOUNT_STALE_TOKENS._value.get(),
        )

    auth = _authn(objects, clock)
    token = _token(
        _claims(pod=BoundRef("web", "uid-web"), expiration_seconds=365 * 86400, warn_after_seconds=3607)
    )
    before = counts()
    clock.now = T0 + 3600
    fresh = await auth.authenticate_token(token)
    assert fresh is not None and fresh.audit_annotations == ()
    assert counts() == (before[0] + 1, before[1])
    clock.now = T0 + 3608
    stale = await auth.authenticate_token(token)
    assert stale is not None
    assert counts() == (before[0] + 1, before[1] + 1)
    # ... and the request's audit event is told so, worded as upstream's claims.go words it.
    assert stale.audit_annotations == (
        (
            "authentication.k8s.io/stale-token",
            "subject: system:serviceaccount:ns:bob, seconds after warning threshold: 1",
        ),
    )
    plain = _token(_claims())  # no warnafter: neither counter moves
    response = await auth.authenticate_token(plain)
    assert response is not None and response.audit_annotations == ()
    assert counts() == (before[0] + 1, before[1] + 1)
