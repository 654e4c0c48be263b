"""Finding the cluster CA from nothing but the server's address and a pinned public-key hash.

As kubeadm's token discovery: `--discovery-token-ca-cert-hash sha256:<hex>` pins the CA by the
SHA-256 of its DER SubjectPublicKeyInfo. The CA is looked for, without trusting anything yet,
(1) in the certificate chain the server presents in its TLS handshake, then (2) in the
`kube-public/cluster-info` ConfigMap kubeadm publishes for anonymous reading. A candidate counts
only when its hash is pinned; the server must then pass a fully verified handshake against it.
Nothing secret (the bootstrap token included) is sent before the CA is pinned.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import socket
import ssl
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = ["DiscoveryError", "discover_ca", "parse_pins", "spki_hash", "verify_server"]

_PIN = re.compile(r"\Asha256:([0-9a-f]{64})\Z")
CLUSTER_INFO_PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"


class DiscoveryError(Exception):
    """The cluster CA could not be found or is not the pinned one; the message is for the user."""


def spki_hash(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def parse_pins(values: Sequence[str]) -> tuple[str, ...]:
    """Normalised `sha256:<hex>` pins; kubeadm's format, other hash types are refused."""
    pins = []
    for value in values:
        text = value.strip().lower()
        match = _PIN.match(text)
        if match is None:
            raise ValueError(f'invalid hash "{value}", expected "sha256:" and 64 hex digits')
        pins.append(text)
    return tuple(pins)


def _endpoint(server: str) -> tuple[str, int]:
    parts = urlsplit(server)
    if parts.scheme != "https" or not parts.hostname:
        raise DiscoveryError(f"the server URL must be https://host[:port], not {server!r}")
    return parts.hostname, parts.port or 443


def _unverified_chain(host: str, port: int, timeout: float) -> list[x509.Certificate]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        ctx.wrap_socket(sock, server_hostname=host) as tls,
    ):
        # Python < 3.13 keeps the full chain behind a private accessor; the leaf is always there.
        raw = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
        if raw is not None:
            return [x509.load_pem_x509_certificate(c.public_bytes().encode()) for c in raw() or []]
        leaf = tls.getpeercert(binary_form=True)
        return [x509.load_der_x509_certificate(leaf)] if leaf else []


async def _cluster_info_cas(server: str, timeout: float) -> list[x509.Certificate]:
    """The CA(s) in kube-public/cluster-info, read anonymously over unverified TLS."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(server.rstrip("/") + CLUSTER_INFO_PATH, ssl=False) as resp,
        ):
            if resp.status != 200:
                return []
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return []
    try:
        doc = yaml.safe_load(((body or {}).get("data") or {}).get("kubeconfig") or "") or {}
        found = []
        for cluster in doc.get("clusters") or []:
            data = (cluster.get("cluster") or {}).get("certificate-authority-data")
            if data:
                found.extend(x509.load_pem_x509_certificates(base64.b64decode(data)))
        return found
    except (ValueError, AttributeError, TypeError, yaml.YAMLError):
        return []


def verify_server(server: str, ca_pem: bytes, timeout: float = 10.0) -> None:
    """A full handshake (chain and host name) against `ca_pem`; raises DiscoveryError if it fails."""
    host, port = _endpoint(server)
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname=host),
        ):
            pass
    except ssl.SSLError as exc:
        raise DiscoveryError(
            f"the server at {server} does not present a certificate of the pinned CA: {exc}"
        ) from exc


async def discover_ca(server: str, pins: Sequence[str], timeout: float = 10.0) -> bytes:
    """The PEM of the pinned cluster CA the server at `server` proves it holds."""
    if not pins:
        raise DiscoveryError("at least one --discovery-token-ca-cert-hash is required")
    host, port = _endpoint(server)
    try:
        chain = await asyncio.to_thread(_unverified_chain, host, port, timeout)
    except OSError as exc:
        raise DiscoveryError(f"cannot reach {server}: {exc}") from exc
    seen: list[str] = []
    for source in ("chain", "cluster-info"):
        candidates = chain if source == "chain" else await _cluster_info_cas(server, timeout)
        for cert in candidates:
            digest = spki_hash(cert)
            seen.append(digest)
            if digest in pins:
                pem = cert.public_bytes(serialization.Encoding.PEM)
                await asyncio.to_thread(verify_server, server, pem, timeout)
                return pem
    found = ", ".join(f'"{h}"' for h in dict.fromkeys(seen)) or "none"
    raise DiscoveryError(
        f"cluster CA not found: none of the public keys the server at {server} offers ({found}) "
        f"are pinned (--discovery-token-ca-cert-hash {', '.join(pins)})"
    )
