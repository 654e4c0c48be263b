"""`pinnace token create|list|delete`: bootstrap tokens as `kubeadm token` manages them.

A token `<id>.<secret>` lives in the Secret `bootstrap-token-<id>` (type
`bootstrap.kubernetes.io/token`, namespace kube-system) with upstream's keys: token-id,
token-secret, expiration (RFC 3339), usage-bootstrap-<usage> = "true", auth-extra-groups and
description. The commands talk to the API server with a kubeconfig (the admin one by default),
like any client. `create --print-join-command` prints what a node needs to join: the server, the
token and the `sha256:<hex>` hash of the CA's public key (SubjectPublicKeyInfo) to pin it by.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from controlplane.api import errors
from controlplane.client import Client, ResourcePath, load_kubeconfig

__all__ = [
    "DEFAULT_GROUP",
    "add_parser",
    "ca_cert_hash",
    "format_list",
    "generate_token",
    "parse_duration",
    "run",
    "token_secret",
]

SECRETS = ResourcePath("", "v1", "secrets")
NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
DEFAULT_USAGES = ("signing", "authentication")
KNOWN_USAGES = ("authentication", "signing")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN = re.compile(r"\A([a-z0-9]{6})\.([a-z0-9]{16})\Z")
_TOKEN_ID = re.compile(r"\A[a-z0-9]{6}\Z")
_GROUP = re.compile(r"\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\Z")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class TokenError(Exception):
    """Bad input to a token command; the message is for the user."""


def generate_token() -> str:
    """`<6>.<16>` random characters of [a-z0-9] (bootstraputil.GenerateBootstrapToken)."""
    pick = secrets.choice
    return "".join(pick(_ALPHABET) for _ in range(6)) + "." + "".join(pick(_ALPHABET) for _ in range(16))


def parse_duration(text: str) -> timedelta:
    """Go's time.ParseDuration for the non-negative durations `--ttl` takes (`24h`, `1h30m`, `0`)."""
    value = text.strip()
    if value == "0":
        return timedelta(0)
    pos, total = 0, 0.0
    while pos < len(value):
        match = _DURATION_PART.match(value, pos)
        if match is None:
            raise TokenError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not value:
        raise TokenError(f'time: invalid duration "{text}"')
    return timedelta(seconds=total)


def ca_cert_hash(ca_pem: bytes) -> str:
    """kubeadm's discovery-token-ca-cert-hash: sha256 over the CA's DER SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_secret(
    token: str,
    *,
    ttl: timedelta,
    usages: Sequence[str],
    groups: Sequence[str],
    description: str,
    now: datetime,
) -> dict[str, Any]:
    """The Secret for `token`, as kubeadm's BootstrapTokenToSecret writes it."""
    match = _TOKEN.match(token)
    if match is None:
        raise TokenError(
            f'the bootstrap token "{token}" was not of the form "^([a-z0-9]{{6}})\\.([a-z0-9]{{16}})$"'
        )
    for usage in usages:
        if usage not in KNOWN_USAGES:
            raise TokenError(
                f"invalid bootstrap token usage string: {usage}, valid usage options: {', '.join(KNOWN_USAGES)}"
            )
    for group in groups:
        if not _GROUP.match(group):
            raise TokenError(f'group "{group}" is invalid (must match {_GROUP.pattern[2:-2]})')
    token_id, token_secret_part = match.groups()
    data = {"token-id": token_id, "token-secret": token_secret_part}
    if description:
        data["description"] = description
    if ttl > timedelta(0):
        data["expiration"] = _rfc3339(now + ttl)
    for usage in usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    if groups:
        data["auth-extra-groups"] = ",".join(groups)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_PREFIX + token_id, "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _data(secret: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def _short_duration(seconds: float) -> str:
    """apimachinery's duration.ShortHumanDuration."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{int(seconds)}s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours = int(seconds // 3600)
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def format_list(items: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """kubeadm token list's table (expired tokens are left out, as kubeadm does)."""
    rows = [("TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS")]
    for secret in items:
        if secret.get("type") != SECRET_TYPE:
            continue
        data = _data(secret)
        token_id, token_secret_part = data.get("token-id", ""), data.get("token-secret", "")
        if not _TOKEN_ID.match(token_id) or not token_secret_part:
            continue
        expiration = data.get("expiration", "")
        ttl, expires = "<forever>", "<never>"
        if expiration:
            try:
                when = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
            except ValueError:
                continue
            left = (when - now).total_seconds()
            if left <= 0:
                continue
            ttl, expires = _short_duration(left), _rfc3339(when)
        usages = sorted(
            k[len("usage-bootstrap-") :]
            for k, v in data.items()
            if k.startswith("usage-bootstrap-") and v == "true"
        )
        rows.append(
            (
                f"{token_id}.{token_secret_part}",
                ttl,
                expires,
                ",".join(usages),
                data.get("description") or "<none>",
                data.get("auth-extra-groups", ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


# --- commands -----------------------------------------------------------------------------------


def add_parser(sub: Any, default_kubeconfig: Path) -> None:
    token = sub.add_parser("token", help="manage bootstrap tokens (like kubeadm token)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--kubeconfig",
        type=Path,
        default=default_kubeconfig,
        help="kubeconfig to talk to the API server with",
    )
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", parents=[common], help="create a bootstrap token and print it")
    create.add_argument("token", nargs="?", default="", help="the token to create (default: a random one)")
    create.add_argument("--ttl", default="24h0m0s", help="duration before the token is deleted (0: never)")
    create.add_argument(
        "--usages", default=",".join(DEFAULT_USAGES), help="comma-separated: signing, authentication"
    )
    create.add_argument(
        "--groups", default=DEFAULT_GROUP, help="comma-separated extra groups to authenticate as"
    )
    create.add_argument("--description", default="", help="a human-friendly description")
    create.add_argument(
        "--print-join-command",
        action="store_true",
        help="print the join parameters instead of the token only",
    )
    token_sub.add_parser("list", parents=[common], help="list bootstrap tokens")
    delete = token_sub.add_parser("delete", parents=[common], help="delete bootstrap tokens")
    delete.add_argument("tokens", nargs="+", metavar="token-value|token-id")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _ca_pem(kubeconfig: Path) -> bytes:
    doc = yaml.safe_load(kubeconfig.read_text())
    current = doc.get("current-context", "")
    context = next(c["context"] for c in doc["contexts"] if c["name"] == current)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"])
    return Path(cluster["certificate-authority"]).read_bytes()


async def _create(args: argparse.Namespace, out: TextIO) -> None:
    token = args.token or generate_token()
    secret = token_secret(
        token,
        ttl=parse_duration(args.ttl),
        usages=_split(args.usages),
        groups=_split(args.groups),
        description=args.description,
        now=datetime.now(UTC),
    )
    credentials = load_kubeconfig(args.kubeconfig)
    async with Client(credentials, user_agent="pinnace-token") as client:
        try:
            await client.create(SECRETS, secret, NAMESPACE)
        except errors.AlreadyExists as exc:
            raise TokenError(f'a token with id "{token.split(".")[0]}" already exists') from exc
    if not args.print_join_command:
        out.write(token + "\n")
        return
    endpoint = urlsplit(credentials.server).netloc
    out.write(
        f"kubeadm join {endpoint} --token {token} "
        f"--discovery-token-ca-cert-hash {ca_cert_hash(_ca_pem(args.kubeconfig))}\n"
    )


async def _list(args: argparse.Namespace, out: TextIO) -> None:
    async with Client(load_kubeconfig(args.kubeconfig), user_agent="pinnace-token") as client:
        listed = await client.list(SECRETS, NAMESPACE)
    out.write(format_list(listed.get("items") or [], datetime.now(UTC)))


async def _delete(args: argparse.Namespace, out: TextIO) -> None:
    ids = []
    for value in args.tokens:
        match = _TOKEN.match(value)
        token_id = match.group(1) if match else value
        if not _TOKEN_ID.match(token_id):
            raise TokenError(
                'given token didn\'t match pattern "^([a-z0-9]{6})$" or "^([a-z0-9]{6})\\.([a-z0-9]{16})$"'
            )
        ids.append(token_id)
    async with Client(load_kubeconfig(args.kubeconfig), user_agent="pinnace-token") as client:
        for token_id in ids:
            try:
                await client.delete(SECRETS, SECRET_PREFIX + token_id, NAMESPACE)
            except errors.NotFound as exc:
                raise TokenError(f'bootstrap token "{token_id}" not found') from exc
            out.write(f'bootstrap token "{token_id}" deleted\n')


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    command = {"create": _create, "list": _list, "delete": _delete}[args.token_command]
    try:
        asyncio.run(command(args, stream))
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except errors.StatusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
