"""Hypothesis: the Authorization header parser and the token authenticators never crash on garbage
and never turn garbage into a user. The only allowed outcomes are "no credentials" (None) and
`errors.Unauthorized`."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from controlplane.api import errors
from controlplane.apiserver.authn import BearerTokenAuthenticator, TokenResponse, bearer_token
from controlplane.apiserver.bootstrap_tokens import BootstrapTokenAuthenticator
from controlplane.apiserver.serviceaccount_tokens import (
    DEFAULT_ISSUER,
    LEGACY_ISSUER,
    ServiceAccountTokenAuthenticator,
)

from .helpers import Clock, Objects, rsa_key

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# One loop for every example: asyncio.run per example would cost more than the code under test.
LOOP = asyncio.new_event_loop()


def _objects() -> Objects:
    objects = Objects()
    objects.put("serviceaccounts", "ns", "bob", "uid-bob")
    objects.put(
        "secrets",
        "kube-system",
        "bootstrap-token-abcdef",
        "uid-b",
        type="bootstrap.kubernetes.io/token",
        data={
            k: base64.b64encode(v.encode()).decode()
            for k, v in {
                "token-id": "abcdef",
                "token-secret": "0123456789abcdef",
                "usage-bootstrap-authentication": "true",
            }.items()
        },
    )
    return objects


def _bearer() -> BearerTokenAuthenticator:
    objects = _objects()
    return BearerTokenAuthenticator(
        [
            ServiceAccountTokenAuthenticator(
                issuers=[DEFAULT_ISSUER],
                public_keys=[rsa_key().private_key.public_key()],
                api_audiences=[DEFAULT_ISSUER],
                objects=objects,
                clock=Clock(),
            ),
            BootstrapTokenAuthenticator(objects, clock=Clock()),
        ],
        [DEFAULT_ISSUER],
    )


AUTHENTICATOR = _bearer()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = (
    scalars
    | st.lists(scalars, max_size=3)
    | st.dictionaries(
        st.sampled_from(["name", "uid", "namespace", "serviceaccount", "pod"]), scalars, max_size=3
    )
)

# JWT-shaped garbage: our issuer (so validation really runs), random claims, random signatures.
claims = st.fixed_dictionaries(
    {"iss": st.sampled_from([DEFAULT_ISSUER, LEGACY_ISSUER])},
    optional={
        "sub": json_values,
        "aud": json_values,
        "exp": json_values,
        "nbf": json_values,
        "iat": json_values,
        "kubernetes.io": json_values,
        "kubernetes.io/serviceaccount/namespace": json_values,
    },
)
headers = st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit"]), json_values, max_size=4)
jwt_like = st.builds(
    lambda h, c, sig: f"{_b64url(json.dumps(h).encode())}.{_b64url(json.dumps(c).encode())}.{_b64url(sig)}",
    headers,
    claims,
    st.binary(max_size=300),
)
bootstrap_like = st.from_regex(r"\A[a-z0-9]{6}\.[a-z0-9]{16}\Z")
tokens = st.text(max_size=200) | jwt_like | bootstrap_like | st.just("abcdef.0123456789abcdeX")


def _run(token: str) -> TokenResponse | None:
    async def go() -> TokenResponse | None:
        try:
            return await AUTHENTICATOR.authenticate_token(token)
        except errors.Unauthorized:
            return None

    return LOOP.run_until_complete(go())


@FUZZ
@given(tokens)
def test_garbage_tokens_never_authenticate(token: str) -> None:
    assert _run(token) is None


@FUZZ
@given(jwt_like)
def test_forged_jwts_never_authenticate(token: str) -> None:
    assert _run(token) is None


def test_the_fixtures_can_authenticate() -> None:
    """The fuzzed authenticator is not simply broken: a real bootstrap token passes."""
    response = _run("abcdef.0123456789abcdef")
    assert response is not None and response.user.name == "system:bootstrap:abcdef"


@FUZZ
@given(st.one_of(st.none(), st.text(max_size=100), st.builds(lambda t: f"Bearer {t}", st.text(max_size=50))))
def test_header_parsing(header: str | None) -> None:
    token = bearer_token(header)
    if token is not None:
        # Only ever the second space-separated word of a "Bearer ..." header, never empty.
        assert token
        assert " " not in token
        assert header is not None and header.strip().lower().startswith("bearer ")


printable_header = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120).map(
    str.strip
)


@FUZZ
@given(printable_header)
def test_request_authentication_with_any_header(value: str) -> None:
    request = make_mocked_request("GET", "/api/v1/pods", headers=CIMultiDict({"Authorization": value}))

    async def go() -> Any:
        try:
            return await AUTHENTICATOR.authenticate(request)
        except errors.Unauthorized:
            return "refused"

    outcome = LOOP.run_until_complete(go())
    if outcome not in (None, "refused"):
        # The only user a header can produce is the real bootstrap token's.
        assert value.split(" ")[1] == "abcdef.0123456789abcdef", (value, outcome)


ref = st.fixed_dictionaries(
    {}, optional={"name": st.sampled_from(["bob", "eve", ""]), "uid": st.sampled_from(["uid-bob", "x", ""])}
)
signed_claims = st.fixed_dictionaries(
    {"iss": st.just(DEFAULT_ISSUER)},
    optional={
        "aud": st.sampled_from([DEFAULT_ISSUER, [DEFAULT_ISSUER], ["other"], [], None]),
        "exp": st.sampled_from([1_800_000_000 + 3600, 1_700_000_000, "soon", None]),
        "nbf": st.sampled_from([1_800_000_000, 1_900_000_000, None]),
        "iat": st.sampled_from([1_800_000_000, 1_900_000_000, 1.5]),
        "kubernetes.io": st.fixed_dictionaries(
            {},
            optional={
                "namespace": st.sampled_from(["ns", "kube-system", "", 3]),
                "serviceaccount": ref | json_values,
                "pod": ref,
                "node": ref,
            },
        )
        | json_values,
    },
)


SIGNED_SUCCESSES: list[str] = []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signed_claims)
@example(
    {
        "iss": DEFAULT_ISSUER,
        "exp": 1_800_000_000 + 3600,
        "kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "bob", "uid": "uid-bob"}},
    }
)
def test_signed_claims_authenticate_only_the_real_account(claims: dict[str, Any]) -> None:
    """Even with our signature, a token is a user only when it names the existing account by name
    and UID, is within its times and is meant for the API."""
    from controlplane.apiserver.serviceaccount_tokens import TokenGenerator

    token = TokenGenerator(DEFAULT_ISSUER, rsa_key()).generate(claims)
    response = _run(token)
    if response is None:
        return
    SIGNED_SUCCESSES.append(token)
    kube = claims["kubernetes.io"]
    assert kube["namespace"] == "ns"
    assert kube["serviceaccount"] == {"name": "bob", "uid": "uid-bob"}
    assert "pod" not in kube and "node" not in kube
    assert response.user.name == "system:serviceaccount:ns:bob"
    assert claims.get("aud") in (DEFAULT_ISSUER, [DEFAULT_ISSUER], [], None)
    assert claims.get("exp") in (1_800_000_000 + 3600, None)


def test_signed_claims_property_saw_a_success() -> None:
    """The property above is not vacuous: at least its explicit example authenticated."""
    test_signed_claims_authenticate_only_the_real_account()
    assert SIGNED_SUCCESSES
