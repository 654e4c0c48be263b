"""Bootstrap tokens: parsing, the Secret's rules (type, usage, expiry, groups) and the user."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from controlplane.apiserver.bootstrap_tokens import (
    BootstrapTokenAuthenticator,
    expiration,
    extra_groups,
    parse_token,
)

from .helpers import T0, Clock, Objects


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def bootstrap_secret(
    objects: Objects, token_id: str = "abcdef", secret: str = "0123456789abcdef", **data: str
) -> dict[str, Any]:
    values = {
        "token-id": token_id,
        "token-secret": secret,
        "usage-bootstrap-authentication": "true",
        **data,
    }
    return objects.put(
        "secrets",
        "kube-system",
        f"bootstrap-token-{token_id}",
        f"uid-{token_id}",
        type="bootstrap.kubernetes.io/token",
        data={k: _b64(v) for k, v in values.items() if v is not None},
    )


@pytest.mark.parametrize(
    ("token", "parsed"),
    [
        ("abcdef.0123456789abcdef", ("abcdef", "0123456789abcdef")),
        ("07401b.f395accd246ae52d", ("07401b", "f395accd246ae52d")),
        ("ABCDEF.0123456789abcdef", None),  # upper case is not a bootstrap token
        ("abcdef.0123456789abcde", None),
        ("abcdef.0123456789abcdef0", None),
        ("abcdef0123456789abcdef", None),
        ("abcdef.0123456789abcdef\n", None),  # \Z, not $: no trailing newline
        ("abcde.0123456789abcdefg", None),
        ("", None),
        ("abcdef:0123456789abcdef", None),
    ],
)
def test_parse_token(token: str, parsed: tuple[str, str] | None) -> None:
    assert parse_token(token) == parsed


def test_expiration() -> None:
    objects = Objects()
    assert expiration(bootstrap_secret(objects), T0) == (0.0, False)  # none: never expires
    assert expiration(bootstrap_secret(objects, expiration="2027-01-15T08:00:30Z"), T0) == (30.0, False)
    assert expiration(bootstrap_secret(objects, expiration="2027-01-15T09:00:30+01:00"), T0) == (30.0, False)
    assert expiration(bootstrap_secret(objects, expiration="2027-01-15T08:00:00Z"), T0) == (0.0, True)
    for unparseable in ("tomorrow", "2027-01-15", "2027-01-15 08:00:30Z", "2027-01-15T08:00:30"):
        assert expiration(bootstrap_secret(objects, expiration=unparseable), T0) == (0.0, True)


def test_extra_groups() -> None:
    objects = Objects()
    assert extra_groups(bootstrap_secret(objects)) == ["system:bootstrappers"]
    secret = bootstrap_secret(
        objects,
        **{"auth-extra-groups": "system:bootstrappers:z,system:bootstrappers:a,system:bootstrappers:z"},
    )
    assert extra_groups(secret) == [
        "system:bootstrappers",
        "system:bootstrappers:a",
        "system:bootstrappers:z",
    ]
    # Upstream's pattern: only system:bootstrappers:<something>, not even the default group itself.
    for bad in (
        "system:masters",
        "system:bootstrappers",
        "system:bootstrappers:",
        "system:bootstrappers:UPPER",
        "",
    ):
        with pytest.raises(ValueError, match="is invalid"):
            extra_groups(bootstrap_secret(objects, **{"auth-extra-groups": f"system:bootstrappers:ok,{bad}"}))


async def test_authenticates_as_system_bootstrap() -> None:
    objects, clock = Objects(), Clock()
    bootstrap_secret(objects, **{"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"})
    auth = BootstrapTokenAuthenticator(objects, clock=clock)
    response = await auth.authenticate_token("abcdef.0123456789abcdef")
    assert response is not None
    assert response.user.name == "system:bootstrap:abcdef"
    assert response.user.groups == (
        "system:bootstrappers",
        "system:bootstrappers:kubeadm:default-node-token",
        "system:authenticated",
    )
    assert response.audiences == ()  # audience-agnostic, like upstream's


async def test_refusals() -> None:
    objects, clock = Objects(), Clock()
    auth = BootstrapTokenAuthenticator(objects, clock=clock)
    token = "abcdef.0123456789abcdef"
    assert await auth.authenticate_token(token) is None  # no such Secret

    bootstrap_secret(objects, secret="0123456789abcdee")
    assert await auth.authenticate_token(token) is None  # wrong secret

    bootstrap_secret(objects, **{"usage-bootstrap-authentication": "false"})
    assert await auth.authenticate_token(token) is None

    bootstrap_secret(objects, expiration="2027-01-15T08:00:10Z")
    assert await auth.authenticate_token(token) is not None
    clock.now = T0 + 10
    assert await auth.authenticate_token(token) is None  # expired

    clock.now = T0
    secret = bootstrap_secret(objects)
    secret["type"] = "Opaque"
    assert await auth.authenticate_token(token) is None

    secret = bootstrap_secret(objects)
    secret["metadata"]["deletionTimestamp"] = "2027-01-15T07:00:00Z"
    assert await auth.authenticate_token(token) is None

    secret = bootstrap_secret(objects, **{"auth-extra-groups": "system:masters"})
    assert await auth.authenticate_token(token) is None

    # The Secret's token-id must match its name's.
    bootstrap_secret(objects)
    objects.items[("secrets", "kube-system", "bootstrap-token-abcdef")]["data"]["token-id"] = _b64("zzzzzz")
    assert await auth.authenticate_token(token) is None

    # Not of the form at all: no lookup.
    reads = objects.reads
    assert await auth.authenticate_token("not-a-bootstrap-token") is None
    assert objects.reads == reads
