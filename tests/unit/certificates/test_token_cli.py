"""`pinnace token`: token format, the bootstrap token Secret, durations, the list table and the
CA public-key hash (checked against a vector computed with openssl)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.tokens_cli import (
    TokenError,
    ca_cert_hash,
    format_list,
    generate_token,
    parse_duration,
    token_secret,
)

T0 = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)

# openssl x509 -in ca.crt -pubkey -noout | openssl pkey -pubin -outform der | sha256sum
VECTOR_CA = b"""-----BEGIN CERTIFICATE-----
MIIBfDCCASOgAwIBAgIUXlJLDP2gJn8GP1trkBA48+hNB2YwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJdmVjdG9yLWNhMB4XDTI2MTEyNjA5MjMzOVoXDTM2MTEyMzA5
MjMzOVowFDESMBAGA1UEAwwJdmVjdG9yLWNhMFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEsmv8dH/WqR3+oG1pEIym2a+1JFTJexgfo9t6XNmLLOb3ily+c3nQvMGB
J4VW6kRR/DdicaG1uabGFWsSCLDsZ6NTMFEwHQYDVR0OBBYEFFKampk+lOrkXyhi
BV5rio1bDattMB8GA1UdIwQYMBaAFFKampk+lOrkXyhiBV5rio1bDattMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgfp6CjXv0UmhSrFZ4SFyZwGld
FNXOp7t21UTcWcYz7qcCIDTzcegxg3ZGtLo43BXW3C8wNlyVEFoFg1mciXPw43IY
-----END CERTIFICATE-----
"""
VECTOR_HASH = "sha256:e6752636b3b0a58b0afac40aa4385652017c7c15afc16937bd08639339b7c067"


def test_ca_cert_hash_matches_openssl() -> None:
    assert ca_cert_hash(VECTOR_CA) == VECTOR_HASH


def test_generated_tokens_have_the_bootstrap_format() -> None:
    tokens = {generate_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        token_id, _, secret = token.partition(".")
        assert len(token_id) == 6 and len(secret) == 16
        assert (token_id + secret).isalnum() and (token_id + secret) == (token_id + secret).lower()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h0m0s", 86400), ("24h", 86400), ("1h30m", 5400), ("90s", 90), ("0", 0), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_bad_durations() -> None:
    for text in ("", "1d", "h", "-1h"):
        with pytest.raises(TokenError):
            parse_duration(text)


def _decoded(secret: dict[str, object]) -> dict[str, str]:
    data = secret["data"]
    assert isinstance(data, dict)
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_token_secret_as_kubeadm_writes_it() -> None:
    secret = token_secret(
        "abcdef.0123456789abcdef",
        ttl=timedelta(hours=24),
        usages=["signing", "authentication"],
        groups=["system:bootstrappers:kubeadm:default-node-token"],
        description="join",
        now=T0,
    )
    assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert _decoded(secret) == {
        "token-id": "abcdef",
        "token-secret": "0123456789abcdef",
        "description": "join",
        "expiration": "2027-01-16T08:00:00Z",
        "usage-bootstrap-signing": "true",
        "usage-bootstrap-authentication": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
    }
    forever = token_secret(
        "abcdef.0123456789abcdef", ttl=timedelta(0), usages=[], groups=[], description="", now=T0
    )
    assert _decoded(forever) == {"token-id": "abcdef", "token-secret": "0123456789abcdef"}


@pytest.mark.parametrize(
    ("token", "usages", "groups"),
    [
        ("ABCDEF.0123456789abcdef", [], []),
        ("abcdef.short", [], []),
        ("abcdef.0123456789abcdef", ["flying"], []),
        ("abcdef.0123456789abcdef", [], ["system:masters"]),
    ],
)
def test_bad_token_input_is_refused(token: str, usages: list[str], groups: list[str]) -> None:
    with pytest.raises(TokenError):
        token_secret(token, ttl=timedelta(hours=1), usages=usages, groups=groups, description="", now=T0)


def test_list_table() -> None:
    live = token_secret(
        "abcdef.0123456789abcdef",
        ttl=timedelta(hours=23, minutes=30),
        usages=["signing", "authentication"],
        groups=["system:bootstrappers:kubeadm:default-node-token"],
        description="",
        now=T0,
    )
    expired = token_secret(
        "zzzzzz.0123456789abcdef",
        ttl=timedelta(hours=1),
        usages=[],
        groups=[],
        description="",
        now=T0 - timedelta(hours=2),
    )
    forever = token_secret(
        "yyyyyy.0123456789abcdef", ttl=timedelta(0), usages=["signing"], groups=[], description="ci", now=T0
    )
    lines = format_list([live, expired, forever], T0).splitlines()
    assert lines[0].split() == ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA", "GROUPS"]
    assert lines[1].split() == [
        "abcdef.0123456789abcdef",
        "23h",
        "2027-01-16T07:30:00Z",
        "authentication,signing",
        "<none>",
        "system:bootstrappers:kubeadm:default-node-token",
    ]
    assert lines[2].split() == ["yyyyyy.0123456789abcdef", "<forever>", "<never>", "signing", "ci"]
    assert len(lines) == 3
