"""TLS bootstrap and rotation of the node agent's client certificates: CSR content, the signed
certificate's use and reuse, jittered rotation on a fake clock, and refusals."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import itertools
import random
import ssl
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api import errors
from controlplane.client import ResourcePath
from node_bootstrap.agent import csr
from node_bootstrap.agent.bootstrap import (
    BootstrapError,
    BootstrapSource,
    CertificateManager,
    load_bootstrap_kubeconfig,
    parse_token,
    stored_source,
)
from node_bootstrap.agent.cli import add_parser, config_from_args, run
from node_bootstrap.agent.clock import FakeClock
from node_bootstrap.agent.discovery import spki_hash

from .fakes import FakeApi, settle

TOKEN = "abcdef.0123456789abcdef"
Obj = dict[str, Any]


def make_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime(2025, 1, 1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


CA, CA_KEY = make_ca()
CA_PEM = CA.public_bytes(serialization.Encoding.PEM)


class SigningApi(FakeApi):
    """CSRs get names from generateName; `sign` approves and signs like the two controllers."""

    def __init__(self, clock: FakeClock, *, auto: bool = True, lifetime: float = 3600.0) -> None:
        super().__init__()
        self.clock = clock
        self.auto = auto
        self.lifetime = lifetime
        self._names = itertools.count()

    async def create(self, rp: ResourcePath, obj: Obj, namespace: str | None = None) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{next(self._names):05d}"
        created = await super().create(rp, obj, namespace)
        if self.auto:
            self.sign(meta["name"])
        return created

    def sign(self, name: str) -> None:
        def approve(obj: Obj) -> None:
            request = x509.load_pem_x509_csr(base64.b64decode(obj["spec"]["request"]))
            now = self.clock.now()
            cert = (
                x509.CertificateBuilder()
                .subject_name(request.subject)
                .issuer_name(CA.subject)
                .public_key(request.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(now + timedelta(seconds=self.lifetime))
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(CA_KEY, hashes.SHA256())
            )
            obj["status"] = {
                "conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved"}],
                "certificate": base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(),
            }

        self.modify("certificatesigningrequests", name, "", approve)

    def csrs(self) -> list[Obj]:
        return [o for (p, _, _), o in self.objects.items() if p == "certificatesigningrequests"]


def source() -> BootstrapSource:
    return BootstrapSource(server="https://127.0.0.1:6443", ca_pem=CA_PEM, token=TOKEN)


def manager(tmp_path: Path, clock: FakeClock, name: str = "node-a", seed: int = 1) -> CertificateManager:
    return CertificateManager(name, tmp_path, source(), clock=clock, rng=random.Random(seed), timeout=30)


# -- the request --------------------------------------------------------------------------------


def test_request_names_the_node_and_asks_the_kubelet_signer() -> None:
    key = csr.new_key()
    request = x509.load_pem_x509_csr(csr.pem_request(key, "node-a"))
    assert request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node-a"
    assert request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    public = request.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    assert request.is_signature_valid
    obj = csr.csr_object(csr.pem_request(key, "node-a"), name="x", expiration_seconds=3600)
    assert obj["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert obj["spec"]["usages"] == ["digital signature", "client auth"]
    assert obj["spec"]["expirationSeconds"] == 3600
    assert obj["metadata"] == {"name": "x"}
    assert csr.csr_object(b"pem", generate_name="csr-")["metadata"] == {"generateName": "csr-"}
    assert "expirationSeconds" not in csr.csr_object(b"pem")["spec"]


def test_bootstrap_request_name_is_digested_from_key_and_node() -> None:
    key, other = csr.new_key(), csr.new_key()
    name = csr.digested_name(key, "node-a")
    assert name.startswith("node-csr-") and len(name) == len("node-csr-") + 43  # unpadded base64 of 32 bytes
    assert name == csr.digested_name(key, "node-a")
    assert name != csr.digested_name(other, "node-a")
    assert name != csr.digested_name(key, "node-b")


@given(st.integers(min_value=60, max_value=10 * 365 * 86400), st.integers())
def test_rotation_deadline_is_70_to_90_percent_of_the_lifetime(lifetime: int, seed: int) -> None:
    start = datetime(2026, 1, 1)
    deadline = csr.rotation_deadline(start, start + timedelta(seconds=lifetime), random.Random(seed))
    elapsed = (deadline - start).total_seconds()
    assert 0.7 * lifetime - 1e-6 <= elapsed <= 0.9 * lifetime + 1e-6


def test_token_format() -> None:
    assert parse_token(f" {TOKEN} ") == TOKEN
    for bad in ("abcdef", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef0", ""):
        with pytest.raises(ValueError, match="bootstrap token"):
            parse_token(bad)


def test_bootstrap_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(CA_PEM)
    path = tmp_path / "bootstrap.conf"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
        "clusters: [{name: c, cluster: {server: 'https://x:6443', certificate-authority: ca.crt}}]\n"
        "contexts: [{name: b, context: {cluster: c, user: u}}]\n"
        f"users: [{{name: u, user: {{token: {TOKEN}}}}}]\n"
    )
    assert load_bootstrap_kubeconfig(path) == BootstrapSource("https://x:6443", CA_PEM, TOKEN)


# -- bootstrap, reuse, rotation -----------------------------------------------------------------


async def test_bootstrap_writes_and_uses_the_signed_certificate(tmp_path: Path) -> None:
    clock = FakeClock()
    api = SigningApi(clock)
    m = manager(tmp_path, clock)
    assert await m.ensure(api) is True
    [request] = api.csrs()
    assert request["metadata"]["name"].startswith("node-csr-")
    data = (tmp_path / "node-a" / "kubelet-client-current.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(data)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node-a"
    key = serialization.load_pem_private_key(data, password=None)
    assert key.public_key() == cert.public_key()
    assert (tmp_path / "node-a" / "kubelet-client-current.pem").stat().st_mode & 0o777 == 0o600
    conf = (tmp_path / "node-a" / "kubelet.conf").read_text()
    assert "system:node:node-a" in conf and str(tmp_path / "node-a" / "kubelet-client-current.pem") in conf
    creds = m.credentials()
    assert creds.token == "" and isinstance(creds.ssl, ssl.SSLContext)
    assert m.certificate == cert

    # A restart with the certificate still valid reuses it: no token, no new CSR.
    again = manager(tmp_path, clock)
    assert await again.ensure(SigningApi(clock)) is False
    assert again.certificate == cert
    # Once it has expired, the node bootstraps anew.
    clock.advance(3601)
    fresh_api = SigningApi(clock)
    assert await manager(tmp_path, clock).ensure(fresh_api) is True
    assert len(fresh_api.csrs()) == 1


async def test_a_restart_with_current_certificates_needs_no_discovery(tmp_path: Path) -> None:
    """The kubelet's restart: every node's kubelet.conf and current certificate are reused, the
    CA taken from them if pinned; the token (and its cluster-info signature) may be gone."""
    clock = FakeClock()
    for name in ("node-a", "node-b"):
        assert await manager(tmp_path, clock, name).ensure(SigningApi(clock)) is True
    pin = spki_hash(CA)
    server = source().server

    def stored(names: tuple[str, ...] = ("node-a", "node-b"), **changes: Any) -> BootstrapSource | None:
        args: dict[str, Any] = {"server": server, "token": TOKEN, "ca_cert_hashes": [pin], "now": clock.now()}
        args.update(changes)
        return stored_source(tmp_path, names, **args)

    assert stored() == BootstrapSource(server=server, ca_pem=CA_PEM, token=TOKEN)
    # Anything that would need the token again sends the agent through discovery.
    assert stored(("node-a", "node-c")) is None  # a node without a certificate yet
    assert stored(ca_cert_hashes=["sha256:" + "0" * 64]) is None  # the stored CA is not pinned
    assert stored(server="https://10.0.0.9:6443") is None  # another server
    assert stored(now=clock.now() + timedelta(seconds=3601)) is None  # the certificates expired


async def test_waits_for_approval_through_the_watch(tmp_path: Path) -> None:
    clock = FakeClock()
    api = SigningApi(clock, auto=False)
    m = manager(tmp_path, clock)
    task = asyncio.create_task(m.ensure(api))
    await settle()
    [pending] = api.csrs()
    assert not task.done()
    api.sign(pending["metadata"]["name"])
    assert await asyncio.wait_for(task, 5) is True
    assert m.certificate is not None


async def test_rotation_at_the_jittered_deadline_as_the_node(tmp_path: Path) -> None:
    clock = FakeClock()
    api = SigningApi(clock, lifetime=1000)
    m = manager(tmp_path, clock, seed=7)
    await m.ensure(api)
    first = m.certificate
    assert first is not None and m.deadline is not None
    lead = (m.deadline - clock.now()).total_seconds()
    assert 700 <= lead <= 900
    rotated: list[int] = []

    async def on_rotated() -> None:
        rotated.append(m.rotations)

    m.on_rotated = on_rotated
    task = asyncio.create_task(m.rotate_forever(api))
    try:
        await settle()
        clock.advance(lead - 1)
        await settle()
        assert m.rotations == 0 and len(api.csrs()) == 1
        clock.advance(1)
        await settle(60)
        assert m.rotations == 1 and rotated == [1]
        renewal = [o for o in api.csrs() if o["metadata"]["name"].startswith("csr-")]
        assert len(renewal) == 1
        assert m.certificate is not None and m.certificate != first
        on_disk = x509.load_pem_x509_certificate(
            (tmp_path / "node-a" / "kubelet-client-current.pem").read_bytes()
        )
        assert on_disk == m.certificate
        assert m.deadline is not None and m.deadline > clock.now()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_failed_rotation_is_retried_with_backoff(tmp_path: Path) -> None:
    clock = FakeClock()
    api = SigningApi(clock, lifetime=100)
    m = manager(tmp_path, clock)
    await m.ensure(api)
    assert m.deadline is not None
    api.fail_next["create certificatesigningrequests"] = errors.ServiceUnavailable(message="down")
    task = asyncio.create_task(m.rotate_forever(api))
    try:
        await settle()
        clock.advance((m.deadline - clock.now()).total_seconds())
        await settle(60)
        assert m.rotations == 0
        clock.advance(1)  # the first retry
        await settle(60)
        assert m.rotations == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_an_unauthorized_token_is_a_clear_error(tmp_path: Path) -> None:
    clock = FakeClock()
    api = SigningApi(clock)
    api.fail_next["create certificatesigningrequests"] = errors.Unauthorized(message="Unauthorized")
    with pytest.raises(BootstrapError, match=r"Unauthorized \(401\).*bootstrap token.*expired"):
        await manager(tmp_path, clock).ensure(api)
    assert not (tmp_path / "node-a" / "kubelet-client-current.pem").exists()


async def test_a_denied_request_is_a_clear_error(tmp_path: Path) -> None:
    clock = FakeClock()
    api = SigningApi(clock, auto=False)
    task = asyncio.create_task(manager(tmp_path, clock).ensure(api))
    await settle()
    [pending] = api.csrs()

    def deny(obj: Obj) -> None:
        obj["status"] = {
            "conditions": [{"type": "Denied", "status": "True", "reason": "Nope", "message": "no"}]
        }

    api.modify("certificatesigningrequests", pending["metadata"]["name"], "", deny)
    with pytest.raises(BootstrapError, match="was denied: Nope no"):
        await asyncio.wait_for(task, 5)


async def test_a_restart_while_waiting_picks_up_the_same_request(tmp_path: Path) -> None:
    """The kubelet's kubelet-client.key.tmp: the bootstrap key outlives a restart until the
    certificate is stored, so the second agent files the same digested CSR (AlreadyExists) and
    waits for it instead of leaving it behind; the key file goes once the certificate is in."""
    clock = FakeClock()
    api = SigningApi(clock, auto=False)
    first = asyncio.create_task(manager(tmp_path, clock).ensure(api))
    await settle()
    [pending] = api.csrs()
    pending_key = tmp_path / "node-a" / "kubelet-client.key.tmp"
    assert pending_key.stat().st_mode & 0o777 == 0o600
    first.cancel()  # the agent dies while the request waits
    with contextlib.suppress(asyncio.CancelledError):
        await first
    restarted = manager(tmp_path, clock)
    second = asyncio.create_task(restarted.ensure(api))
    await settle()
    assert [r["metadata"]["name"] for r in api.csrs()] == [pending["metadata"]["name"]]
    api.sign(pending["metadata"]["name"])
    assert await asyncio.wait_for(second, 5) is True
    assert restarted.certificate is not None
    assert not pending_key.exists()


async def test_gives_up_after_the_timeout(tmp_path: Path) -> None:
    clock = FakeClock()
    api = SigningApi(clock, auto=False)
    task = asyncio.create_task(manager(tmp_path, clock).ensure(api))
    await settle()
    clock.advance(31)
    await settle(60)
    with pytest.raises(BootstrapError, match="timed out"):
        await asyncio.wait_for(task, 5)


# -- flags --------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pinnace")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["node-agent", *argv])


PIN = "sha256:" + "ab" * 32


def test_join_flags_make_a_bootstrapping_config(tmp_path: Path) -> None:
    config = config_from_args(
        parse(
            "--server",
            "https://10.0.0.1:6443",
            "--token",
            TOKEN,
            "--discovery-token-ca-cert-hash",
            PIN.upper().replace("SHA256", "sha256"),
            "--data-dir",
            str(tmp_path),
            "--nodes",
            "3",
            "--certificate-expiration-seconds",
            "3600",
            "--no-rotate-certificates",
        )
    )
    assert config.bootstraps and config.kubeconfig is None
    assert config.bootstrap_server == "https://10.0.0.1:6443" and config.bootstrap_token == TOKEN
    assert config.discovery_ca_cert_hashes == (PIN,)
    assert config.cert_dir == tmp_path / "pki"
    assert config.certificate_expiration_seconds == 3600 and not config.rotate_certificates
    assert len(config.node_names) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--server", "https://x", "--discovery-token-ca-cert-hash", PIN, "--cert-dir", "/tmp/x"], "--token"),
        (
            ["--server", "https://x", "--token", TOKEN, "--cert-dir", "/tmp/x"],
            "--discovery-token-ca-cert-hash",
        ),
        (
            ["--server", "https://x", "--token", "nope", "--discovery-token-ca-cert-hash", PIN],
            "bootstrap token",
        ),
        (
            ["--server", "https://x", "--token", TOKEN, "--discovery-token-ca-cert-hash", "sha256:00"],
            "invalid hash",
        ),
        (["--server", "https://x", "--token", TOKEN, "--discovery-token-ca-cert-hash", PIN], "--cert-dir"),
        (["--server", "https://x", "--bootstrap-kubeconfig", "/tmp/b.conf"], "exclude each other"),
    ],
)
def test_bad_join_flags(argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(ValueError, match=message):
        config_from_args(parse("--node-name", "n", *argv))


def test_bad_flags_exit_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--node-name", "n", "--server", "https://x", "--token", TOKEN)) == 2
    assert "--discovery-token-ca-cert-hash" in capsys.readouterr().err
