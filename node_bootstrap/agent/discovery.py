"""Finding the cluster CA from nothing but the server's address, a bootstrap token and a pinned
public-key hash: kubeadm's token discovery (cmd/kubeadm/app/discovery/token).

1. `kube-public/cluster-info` is read anonymously over TLS that verifies nothing yet. Until
   the bootstrapsigner controller has signed it for this token (`jws-kubeconfig-<token id>`),
   the read is retried, as kubeadm does, up to the discovery timeout.
2. The detached HS256 JWS must be the kubeconfig's, keyed by the token secret: the publisher
   knew the secret, so this is the cluster the token belongs to.
3. The kubeconfig's CA must be pinned (`--discovery-token-ca-cert-hash sha256:<hex>`, the
   SHA-256 of its DER SubjectPublicKeyInfo).
4. cluster-info is read again over TLS verified against that CA (chain and host name) and must
   be the same kubeconfig: the server holds a certificate of the pinned CA.

Neither the token nor its secret is ever sent: the JWS is checked, not presented.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from controlplane.api.bootstrap_jws import detached_token_is_valid
from node_bootstrap.agent.clock import Clock, RealClock

__all__ = ["DiscoveryError", "discover_ca", "parse_pins", "spki_hash"]

log = logging.getLogger("pinnace.nodeagent.discovery")

_PIN = re.compile(r"\Asha256:([0-9a-f]{64})\Z")
CLUSTER_INFO_PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
JWS_PREFIX = "jws-kubeconfig-"
# kubeadm's defaults: the whole discovery may take five minutes, retried every five seconds.
DISCOVERY_TIMEOUT = 300.0
RETRY_INTERVAL = 5.0


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


def _endpoint(server: str) -> None:
    parts = urlsplit(server)
    if parts.scheme != "https" or not parts.hostname:
        raise DiscoveryError(f"the server URL must be https://host[:port], not {server!r}")


class _Unavailable(Exception):
    """cluster-info could not be read this time; worth another try."""


async def _cluster_info(server: str, tls: ssl.SSLContext | bool, timeout: float) -> dict[str, str]:
    """The data of kube-public/cluster-info, read anonymously."""
    url = server.rstrip("/") + CLUSTER_INFO_PATH
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url, ssl=tls) as resp,
        ):
            if resp.status != 200:
                raise _Unavailable(f"reading the cluster-info ConfigMap from {server}: HTTP {resp.status}")
            body = await resp.json(content_type=None)
    except aiohttp.ClientSSLError as exc:
        if tls is False:
            raise _Unavailable(f"cannot reach {server}: {exc}") from exc
        raise DiscoveryError(
            f"the server at {server} does not present a certificate of the pinned CA: {exc}"
        ) from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _Unavailable(f"cannot reach {server}: {exc}") from exc
    except ValueError as exc:
        raise _Unavailable(f"the cluster-info ConfigMap from {server} is not JSON: {exc}") from exc
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise _Unavailable(f"the cluster-info ConfigMap from {server} has no data")
    return {str(k): str(v) for k, v in data.items()}


def _kubeconfig_cas(text: str) -> list[x509.Certificate]:
    try:
        doc: Any = yaml.safe_load(text) or {}
        found: list[x509.Certificate] = []
        for cluster in doc.get("clusters") or []:
            data = (cluster.get("cluster") or {}).get("certificate-authority-data")
            if data:
                found.extend(x509.load_pem_x509_certificates(base64.b64decode(data)))
    except (ValueError, AttributeError, TypeError, yaml.YAMLError) as exc:
        raise DiscoveryError(f"the kubeconfig in the cluster-info ConfigMap is not usable: {exc}") from exc
    return found


async def _signed_cluster_info(
    server: str, token_id: str, clock: Clock, timeout: float, interval: float, request_timeout: float
) -> dict[str, str]:
    """cluster-info once it carries this token's signature; retried until then, or the timeout."""
    deadline = clock.monotonic() + timeout
    while True:
        try:
            data = await _cluster_info(server, False, request_timeout)
        except _Unavailable as exc:
            problem = str(exc)
        else:
            if data.get(JWS_PREFIX + token_id):
                return data
            # The ConfigMap exists before its signatures do: the signer adds them a moment later.
            problem = (
                f'could not find a JWS signature in the cluster-info ConfigMap for token ID "{token_id}"'
            )
        if clock.monotonic() + interval > deadline:
            raise DiscoveryError(problem)
        log.info("[discovery] %s; will try again in %gs", problem, interval)
        await clock.sleep(interval)


async def discover_ca(
    server: str,
    pins: Sequence[str],
    token_id: str,
    token_secret: str,
    *,
    clock: Clock | None = None,
    timeout: float = DISCOVERY_TIMEOUT,
    interval: float = RETRY_INTERVAL,
    request_timeout: float = 10.0,
) -> bytes:
    """The PEM of the pinned cluster CA, from the cluster-info the token's signature vouches for."""
    if not pins:
        raise DiscoveryError("at least one --discovery-token-ca-cert-hash is required")
    _endpoint(server)
    clock = clock or RealClock()
    data = await _signed_cluster_info(server, token_id, clock, timeout, interval, request_timeout)
    kubeconfig = data.get("kubeconfig", "")
    if not detached_token_is_valid(data[JWS_PREFIX + token_id], kubeconfig, token_id, token_secret):
        raise DiscoveryError(
            "failed to verify JWS signature of received cluster info object, can't trust this API Server"
        )
    cas = _kubeconfig_cas(kubeconfig)
    pinned = [cert for cert in cas if spki_hash(cert) in pins]
    if not pinned:
        found = ", ".join(f'"{spki_hash(c)}"' for c in cas) or "none"
        raise DiscoveryError(
            f"cluster CA found in cluster-info ConfigMap is invalid: none of the public keys ({found}) "
            f"are pinned (--discovery-token-ca-cert-hash {', '.join(pins)})"
        )
    pem = pinned[0].public_bytes(serialization.Encoding.PEM)
    verified = ssl.create_default_context(cadata=pem.decode())
    try:
        again = await _cluster_info(server, verified, request_timeout)
    except _Unavailable as exc:
        raise DiscoveryError(str(exc)) from exc
    if again.get("kubeconfig") != kubeconfig:
        raise DiscoveryError(
            "the cluster-info ConfigMap read over TLS verified with the pinned CA differs from the "
            "signed one, can't trust this API Server"
        )
    return pem
