"""TLS bootstrap and client-certificate rotation, as the kubelet's --bootstrap-kubeconfig does.

A node without a usable certificate authenticates with a bootstrap token, creates a CSR for
CN=system:node:<name>, O=system:nodes (signer kubernetes.io/kube-apiserver-client-kubelet),
waits for it to be approved and signed, and from then on talks as system:node:<name>. The
certificate and its key live in `<cert-dir>/<node>/kubelet-client-current.pem` next to a
kubeconfig (`kubelet.conf`) that uses them; a restart reuses a certificate that is still valid,
and the token is not needed again. Renewal happens at a jittered 70-90% of the lifetime with a
new CSR made as the node itself (approved through `selfnodeclient`); the new certificate is
loaded into the same TLS context and the node's connections are closed, so every request from
then on presents it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import random
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane.client import Client, Credentials, ResourcePath
from node_bootstrap.agent import certs, csr
from node_bootstrap.agent.clock import Clock
from node_bootstrap.agent.discovery import DISCOVERY_TIMEOUT, DiscoveryError, discover_ca, spki_hash
from node_bootstrap.agent.kube import Api, is_already_exists, status_code

__all__ = [
    "CSRS",
    "BootstrapError",
    "BootstrapSource",
    "CertificateManager",
    "bootstrap_source",
    "load_bootstrap_kubeconfig",
    "parse_token",
    "stored_source",
    "wait_for_certificate",
]

log = logging.getLogger("pinnace.nodeagent.bootstrap")

CSRS = ResourcePath("certificates.k8s.io", "v1", "certificatesigningrequests", namespaced=False)
PEM_NAME = "kubelet-client-current.pem"
KUBECONFIG_NAME = "kubelet.conf"
# The bootstrap key while its request waits for a certificate (the kubelet's name for it).
PENDING_KEY_NAME = "kubelet-client.key.tmp"
_TOKEN = re.compile(r"\A([a-z0-9]{6})\.([a-z0-9]{16})\Z")
RETRY_INITIAL, RETRY_MAX = 1.0, 300.0


class BootstrapError(Exception):
    """The node cannot get its client certificate; the message is for the user."""


@dataclass(frozen=True)
class BootstrapSource:
    """Where to bootstrap: the server, the CA it must prove, and the token to ask with."""

    server: str
    ca_pem: bytes
    token: str

    def credentials(self) -> Credentials:
        return Credentials(server=self.server.rstrip("/"), ssl=_client_context(self.ca_pem), token=self.token)


def parse_token(token: str) -> str:
    if _TOKEN.match(token.strip()) is None:
        raise ValueError('the bootstrap token must have the form "[a-z0-9]{6}.[a-z0-9]{16}"')
    return token.strip()


def load_bootstrap_kubeconfig(path: Path) -> BootstrapSource:
    """Server, CA and token of a bootstrap kubeconfig (its current context)."""
    doc = yaml.safe_load(path.read_text()) or {}
    try:
        ctx_name = doc.get("current-context", "")
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
    except (KeyError, StopIteration, TypeError) as exc:
        raise ValueError(f"{path}: not a usable kubeconfig (no current context)") from exc
    if cluster.get("certificate-authority-data"):
        ca_pem = base64.b64decode(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority"):
        ca_path = Path(cluster["certificate-authority"])
        ca_pem = (ca_path if ca_path.is_absolute() else path.parent / ca_path).read_bytes()
    else:
        raise ValueError(f"{path}: the bootstrap kubeconfig names no certificate authority")
    token = str(user.get("token") or "")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    return BootstrapSource(server=str(cluster["server"]), ca_pem=ca_pem, token=parse_token(token))


async def bootstrap_source(
    *,
    bootstrap_kubeconfig: Path | None,
    server: str,
    token: str,
    ca_cert_hashes: Sequence[str],
    clock: Clock | None = None,
    discovery_timeout: float = DISCOVERY_TIMEOUT,
) -> BootstrapSource:
    """The source from a bootstrap kubeconfig, or from --server/--token with the CA discovered
    through the token-signed cluster-info and pinned by hash."""
    if bootstrap_kubeconfig is not None:
        return load_bootstrap_kubeconfig(bootstrap_kubeconfig)
    token = parse_token(token)
    token_id, _, token_secret = token.partition(".")
    try:
        ca_pem = await discover_ca(
            server, ca_cert_hashes, token_id, token_secret, clock=clock, timeout=discovery_timeout
        )
    except DiscoveryError as exc:
        raise BootstrapError(str(exc)) from exc
    return BootstrapSource(server=server, ca_pem=ca_pem, token=token)


def _client_context(ca_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _issued(obj: Mapping[str, Any]) -> bytes | None:
    """The certificate once approved and signed; BootstrapError when denied or failed."""
    name = (obj.get("metadata") or {}).get("name", "")
    status = obj.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Denied", "Failed") and cond.get("status", "True") == "True":
            verb = "denied" if cond["type"] == "Denied" else "failed"
            raise BootstrapError(
                f"certificate signing request {name} was {verb}: {cond.get('reason', '')} {cond.get('message', '')}".rstrip()
            )
    approved = any(c.get("type") == "Approved" for c in status.get("conditions") or [])
    if approved and status.get("certificate"):
        return base64.b64decode(status["certificate"])
    return None


async def _watch_issued(api: Api, name: str, resource_version: str) -> bytes | None:
    params = {"fieldSelector": f"metadata.name={name}", "timeoutSeconds": "60"}
    if resource_version:
        params["resourceVersion"] = resource_version
    async for event in api.watch(CSRS, params=params):
        if event.get("type") == "ERROR":
            return None
        pem = _issued(event.get("object") or {})
        if pem is not None:
            return pem
    return None


async def wait_for_certificate(api: Api, name: str, *, clock: Clock, timeout: float) -> bytes:
    """Watch the CSR `name` until it carries a certificate (or was denied, or time ran out)."""
    deadline = clock.monotonic() + timeout
    while True:
        obj = await api.get(CSRS, name)
        pem = _issued(obj)
        if pem is not None:
            return pem
        left = deadline - clock.monotonic()
        if left <= 0:
            raise BootstrapError(
                f"timed out after {timeout:g}s waiting for certificate signing request {name}"
            )
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        watcher = asyncio.ensure_future(_watch_issued(api, name, rv))
        # Wall-clock or fake: the timeout runs on the agent's clock.
        sleeper = asyncio.ensure_future(clock.sleep(min(left, 60.0)))
        try:
            done, _ = await asyncio.wait({watcher, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            sleeper.cancel()
        if watcher in done and not watcher.cancelled():
            exc = watcher.exception()
            if isinstance(exc, BootstrapError):
                raise exc
            if exc is None and watcher.result() is not None:
                pem = watcher.result()
                assert pem is not None
                return pem
            if exc is not None:
                # A watch the server refused or dropped: poll again after a pause.
                log.debug("watch of %s ended: %s", name, exc)
                await clock.sleep(1.0)


def _check_issued(pem: bytes, key: ec.EllipticCurvePrivateKey, node_name: str) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise BootstrapError(f"the signer returned an unreadable certificate: {exc}") from exc
    if cert.public_key() != key.public_key():
        raise BootstrapError("the issued certificate is not for the requested key")
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cn != [csr.node_user(node_name)]:
        raise BootstrapError(f"the issued certificate names {cn}, not {csr.node_user(node_name)}")
    return cert


async def request_certificate(
    api: Api,
    node_name: str,
    *,
    clock: Clock,
    bootstrap: bool,
    timeout: float,
    expiration_seconds: int | None = None,
    pending_key: Path | None = None,
) -> tuple[x509.Certificate, bytes, bytes]:
    """A key and its signed certificate: (certificate, certificate PEM, key PEM).

    `pending_key` (bootstrap): the key is kept there until the caller has stored the certificate,
    as the kubelet keeps `kubelet-client.key.tmp`, so an agent restarted while its request waits
    for approval asks again with the same key, hence the same digested CSR name, and picks up
    that request instead of leaving it behind and filing another."""
    key = _pending_key(pending_key) if pending_key is not None else csr.new_key()
    request = csr.pem_request(key, node_name)
    if bootstrap:
        obj = csr.csr_object(
            request, name=csr.digested_name(key, node_name), expiration_seconds=expiration_seconds
        )
    else:
        obj = csr.csr_object(request, generate_name="csr-", expiration_seconds=expiration_seconds)
    try:
        created = await api.create(CSRS, obj)
    except Exception as exc:
        if is_already_exists(exc):
            created = obj
        elif status_code(exc) == 401:
            raise BootstrapError(
                "cannot create certificate signing request: Unauthorized (401): the server refused the "
                + (
                    "bootstrap token; it is expired, deleted or wrong (create a new one with `pinnace token create`)"
                    if bootstrap
                    else "node's client certificate"
                )
            ) from exc
        elif status_code(exc) == 403:
            raise BootstrapError(
                f"cannot create certificate signing request: Forbidden (403): {exc}"
            ) from exc
        else:
            raise
    name = str(created["metadata"]["name"])
    log.info("node %s: waiting for certificate signing request %s", node_name, name)
    pem = await wait_for_certificate(api, name, clock=clock, timeout=timeout)
    cert = _check_issued(pem, key, node_name)
    return cert, pem, csr.key_pem(key)


def _pending_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The key a previous attempt saved at `path`, or a new one saved there first."""
    with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
        found = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(found, ec.EllipticCurvePrivateKey):
            return found
    key = csr.new_key()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(path, csr.key_pem(key))
    return key


def _write_private(path: Path, data: bytes) -> None:
    """Atomically, mode 0600: a crash never leaves half a key behind."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _valid_certificate(pem_path: Path, node_name: str, now: datetime) -> x509.Certificate | None:
    """The node's stored client certificate, if it is its own, matches its key and is current."""
    if not pem_path.exists():
        return None
    try:
        data = pem_path.read_bytes()
        cert = x509.load_pem_x509_certificate(data)
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        return None
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cn != [csr.node_user(node_name)] or cert.public_key() != key.public_key():
        return None
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        return None
    return cert


def stored_source(
    cert_dir: Path,
    node_names: Sequence[str],
    *,
    server: str,
    token: str,
    ca_cert_hashes: Sequence[str],
    now: datetime,
) -> BootstrapSource | None:
    """The kubelet's restart: when every node still has a current certificate and a kubelet.conf
    for this server whose CA is pinned, that CA is used and discovery is skipped. The bootstrap
    token (and its cluster-info signature) may be long gone by then, as upstream's."""
    ca_pem: bytes | None = None
    for name in node_names:
        kubeconfig = cert_dir / name / KUBECONFIG_NAME
        if _valid_certificate(cert_dir / name / PEM_NAME, name, now) is None or not kubeconfig.exists():
            return None
        try:
            doc = yaml.safe_load(kubeconfig.read_text()) or {}
            servers = {str((c.get("cluster") or {}).get("server", "")) for c in doc.get("clusters") or []}
            found = certs.ca_from_kubeconfig(kubeconfig)
        except (OSError, ValueError, AttributeError, TypeError, yaml.YAMLError):
            return None
        if found is None or servers != {server} or (ca_pem is not None and found != ca_pem):
            return None
        ca_pem = found
    if ca_pem is None:
        return None
    try:
        pinned = any(spki_hash(cert) in ca_cert_hashes for cert in x509.load_pem_x509_certificates(ca_pem))
    except ValueError:
        return None
    return BootstrapSource(server=server, ca_pem=ca_pem, token=token) if pinned else None


class CertificateManager:
    """One node's client certificate: bootstrap it, keep it in a TLS context, rotate it."""

    def __init__(
        self,
        node_name: str,
        cert_dir: Path,
        source: BootstrapSource,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        expiration_seconds: int | None = None,
        timeout: float = 300.0,
        on_rotated: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.node_name = node_name
        # Called after a rotation: the kubelet closes its connections then, so none keeps
        # presenting the old certificate until it expires.
        self.on_rotated = on_rotated
        self.dir = cert_dir / node_name
        self.pem_path = self.dir / PEM_NAME
        self.kubeconfig_path = self.dir / KUBECONFIG_NAME
        self.pending_key_path = self.dir / PENDING_KEY_NAME
        self.source = source
        self._clock = clock
        self._rng = rng or random.Random()
        self._expiration_seconds = expiration_seconds
        self._timeout = timeout
        self.ssl = _client_context(source.ca_pem)
        self.certificate: x509.Certificate | None = None
        self.deadline: datetime | None = None
        self.rotations = 0

    def credentials(self) -> Credentials:
        return Credentials(server=self.source.server.rstrip("/"), ssl=self.ssl)

    def _load_existing(self) -> x509.Certificate | None:
        return _valid_certificate(self.pem_path, self.node_name, self._clock.now())

    def _use(self, cert: x509.Certificate) -> None:
        self.ssl.load_cert_chain(str(self.pem_path))
        self.certificate = cert
        self.deadline = csr.rotation_deadline(cert.not_valid_before_utc, cert.not_valid_after_utc, self._rng)

    def _store(self, cert_pem: bytes, key_pem: bytes) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(self.pem_path, cert_pem.rstrip(b"\n") + b"\n" + key_pem)
        user = f"system:node:{self.node_name}"
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "default-cluster",
                    "cluster": {
                        "server": self.source.server,
                        "certificate-authority-data": base64.b64encode(self.source.ca_pem).decode(),
                    },
                }
            ],
            "contexts": [
                {"name": "default-context", "context": {"cluster": "default-cluster", "user": user}}
            ],
            "current-context": "default-context",
            "users": [
                {
                    "name": user,
                    "user": {"client-certificate": str(self.pem_path), "client-key": str(self.pem_path)},
                }
            ],
        }
        _write_private(self.kubeconfig_path, yaml.safe_dump(kubeconfig, sort_keys=False).encode())

    async def ensure(self, bootstrap_api: Api | None = None) -> bool:
        """Load a still-valid certificate, else bootstrap one with the token; True if bootstrapped.

        `bootstrap_api` is for tests; by default a client with the bootstrap token is made."""
        existing = self._load_existing()
        if existing is not None:
            log.info(
                "node %s: reusing client certificate valid until %s",
                self.node_name,
                existing.not_valid_after_utc,
            )
            self._use(existing)
            return False
        if bootstrap_api is not None:
            await self._bootstrap(bootstrap_api)
        else:
            async with Client(
                self.source.credentials(), user_agent="kubelet-bootstrap pinnace-node-agent"
            ) as api:
                await self._bootstrap(api)
        return True

    async def _bootstrap(self, api: Api) -> None:
        cert, cert_pem, key_pem = await request_certificate(
            api,
            self.node_name,
            clock=self._clock,
            bootstrap=True,
            timeout=self._timeout,
            expiration_seconds=self._expiration_seconds,
            pending_key=self.pending_key_path,
        )
        self._store(cert_pem, key_pem)
        self.pending_key_path.unlink(missing_ok=True)
        self._use(cert)
        log.info(
            "node %s: bootstrapped; client certificate valid until %s",
            self.node_name,
            cert.not_valid_after_utc,
        )

    async def rotate(self, api: Api) -> None:
        """A new certificate through a CSR made as the node itself."""
        cert, cert_pem, key_pem = await request_certificate(
            api,
            self.node_name,
            clock=self._clock,
            bootstrap=False,
            timeout=self._timeout,
            expiration_seconds=self._expiration_seconds,
        )
        self._store(cert_pem, key_pem)
        self._use(cert)
        self.rotations += 1
        if self.on_rotated is not None:
            await self.on_rotated()
        log.info(
            "node %s: rotated client certificate; valid until %s", self.node_name, cert.not_valid_after_utc
        )

    async def rotate_forever(self, api: Api) -> None:
        """Renew at each certificate's deadline; on failure retry with capped exponential backoff."""
        delay = RETRY_INITIAL
        while True:
            if self.deadline is None:
                raise RuntimeError("no certificate to rotate; call ensure() first")
            wait = (self.deadline - self._clock.now()).total_seconds()
            if wait > 0:
                await self._clock.sleep(wait)
            try:
                await self.rotate(api)
            except (BootstrapError, OSError, ValueError, aiohttp.ClientError) as exc:
                log.warning(
                    "node %s: certificate rotation failed (retrying in %gs): %s", self.node_name, delay, exc
                )
            except Exception as exc:
                if status_code(exc) is None:
                    raise
                log.warning(
                    "node %s: certificate rotation failed (retrying in %gs): %s", self.node_name, delay, exc
                )
            else:
                delay = RETRY_INITIAL
                continue
            await self._clock.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
