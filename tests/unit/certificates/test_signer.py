"""The signing controller: upstream's signer checks, the authority's certificates and the
controller's decisions (sign, fail, leave alone), with a fake client."""

from __future__ import annotations

import base64
import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controlplane.api import certificates as certapi
from controlplane.controllers.csrsigning import CSRSigningController, signer_check
from controlplane.controllers.csrsigning_authority import signing_duration
from controlplane.controllers.runtime import (
    ControllerConfig,
    ControllerContext,
    EventBroadcaster,
    FakeClock,
    InformerFactory,
)

from .helpers import T0, approved, csr_object, csr_pem, make_ca

NODE_CLIENT = certapi.KUBE_APISERVER_CLIENT_KUBELET
SERVING = certapi.KUBELET_SERVING


def check(signer: str, pem: bytes, usages: list[str]) -> str:
    fn = signer_check(signer)
    assert fn is not None
    try:
        fn(certapi.parse_csr(pem), usages)
    except certapi.CSRError as exc:
        return str(exc)
    return ""


def test_kubelet_client_checks() -> None:
    good = csr_pem("system:node:n1", ["system:nodes"])
    assert check(NODE_CLIENT, good, ["digital signature", "client auth"]) == ""
    assert check(NODE_CLIENT, good, ["digital signature", "key encipherment", "client auth"]) == ""
    assert check(NODE_CLIENT, good, ["client auth"]) == (
        "usages did not match [client auth digital signature key encipherment]"
    )
    assert check(NODE_CLIENT, csr_pem("system:node:n1", ["devs"]), ["client auth"]) == (
        "subject organization is not system:nodes"
    )
    assert check(NODE_CLIENT, csr_pem("n1", ["system:nodes"]), ["digital signature", "client auth"]) == (
        "subject common name does not begin with system:node:"
    )
    assert check(NODE_CLIENT, csr_pem("system:node:n1", ["system:nodes"], dns=["n1"]), ["client auth"]) == (
        "DNS subjectAltNames are not allowed"
    )
    assert check(
        NODE_CLIENT, csr_pem("system:node:n1", ["system:nodes"], ips=["10.0.0.1"]), ["client auth"]
    ) == ("IP subjectAltNames are not allowed")


def test_kubelet_serving_checks() -> None:
    usages = ["digital signature", "server auth"]
    assert (
        check(SERVING, csr_pem("system:node:n1", ["system:nodes"], dns=["n1"], ips=["10.0.0.1"]), usages)
        == ""
    )
    assert check(SERVING, csr_pem("system:node:n1", ["system:nodes"]), usages) == (
        "DNS or IP subjectAltName is required"
    )
    assert check(
        SERVING, csr_pem("system:node:n1", ["system:nodes"], emails=["a@b.c"], dns=["n1"]), usages
    ) == ("Email subjectAltNames are not allowed")
    assert check(SERVING, csr_pem("system:node:n1", ["system:nodes"], dns=["n1"]), ["client auth"]) == (
        "usages did not match [digital signature key encipherment server auth]"
    )
    assert check(SERVING, csr_pem("node", ["system:nodes"], dns=["n1"]), usages) == (
        "subject common name does not begin with system:node:"
    )


def test_api_server_client_usages() -> None:
    pem = csr_pem("alice")
    signer = certapi.KUBE_APISERVER_CLIENT
    assert check(signer, pem, ["client auth", "digital signature", "key encipherment"]) == ""
    assert (
        check(signer, pem, ["server auth", "client auth"])
        == "invalid usage for client certificate: server auth"
    )
    assert (
        check(signer, pem, ["digital signature"])
        == "missing required usage for client certificate: client auth"
    )
    assert signer_check("example.com/other") is None


def test_signing_duration() -> None:
    year = timedelta(days=365)
    assert signing_duration(year, None) == year
    assert signing_duration(year, 3600) == timedelta(hours=1)
    assert signing_duration(year, 60) == timedelta(minutes=10)
    assert signing_duration(timedelta(hours=1), 86400) == timedelta(hours=1)


def test_authority_issues_with_requested_subject_sans_and_usages() -> None:
    ca = make_ca()
    pem = csr_pem("system:node:n1", ["system:nodes"], dns=["n1.example"], ips=["10.0.0.7"], rsa_key=True)
    issued = ca.sign(
        certapi.parse_csr(pem),
        ["digital signature", "key encipherment", "server auth"],
        timedelta(hours=2),
        T0,
    )
    cert = x509.load_pem_x509_certificate(issued)
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n1"
    assert cert.not_valid_after_utc - T0 == timedelta(hours=2)
    assert T0 - cert.not_valid_before_utc == timedelta(minutes=5)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["n1.example"]
    assert [str(i) for i in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        self.calls.append((method, path, copy.deepcopy(body)))
        return body


@pytest.fixture
def ca_files(tmp_path: Path) -> dict[str, Any]:
    ca = make_ca()
    cert, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    cert.write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        ca.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return {
        "cluster_signing_cert_file": cert,
        "cluster_signing_key_file": key,
        "cluster_signing_duration": 7200.0,
    }


def controller(client: FakeClient, extra: dict[str, Any]) -> CSRSigningController:
    ctx = ControllerContext(
        client=client,  # type: ignore[arg-type]
        informers=InformerFactory(client),  # type: ignore[arg-type]
        recorder=EventBroadcaster(client).recorder("test"),  # type: ignore[arg-type]
        clock=FakeClock(T0),
        config=ControllerConfig(extra=extra),
    )
    return CSRSigningController(ctx)


async def test_signs_approved_requests_and_caps_the_lifetime(ca_files: dict[str, Any]) -> None:
    client = FakeClient()
    signer = controller(client, ca_files)
    signer.csrs.apply(
        "ADDED", csr_object(csr_pem("alice", ["devs"]), conditions=[approved()], expiration=86400)
    )
    assert await signer.reconcile("csr-1") is None
    [(method, path, body)] = client.calls
    assert (method, path) == ("PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1/status")
    cert = x509.load_pem_x509_certificate(base64.b64decode(body["status"]["certificate"]))
    assert cert.not_valid_after_utc - T0 == timedelta(hours=2)  # the signer's 2h beats the asked 24h
    assert body["status"]["conditions"] == [approved()]


async def test_leaves_pending_denied_issued_and_foreign_requests_alone(ca_files: dict[str, Any]) -> None:
    client = FakeClient()
    signer = controller(client, ca_files)
    pem = csr_pem("alice")
    signer.csrs.apply("ADDED", csr_object(pem, name="pending"))
    signer.csrs.apply(
        "ADDED", csr_object(pem, name="denied", conditions=[{"type": "Denied", "status": "True"}])
    )
    signer.csrs.apply("ADDED", csr_object(pem, name="issued", conditions=[approved()], certificate="eA=="))
    signer.csrs.apply(
        "ADDED", csr_object(pem, signer="example.com/mine", name="foreign", conditions=[approved()])
    )
    failed = {"type": "Failed", "status": "True", "reason": "SignerValidationFailure"}
    signer.csrs.apply("ADDED", csr_object(pem, name="failed", conditions=[approved(), failed]))
    for name in ("pending", "denied", "issued", "foreign", "failed"):
        assert await signer.reconcile(name) is None
    assert client.calls == []


async def test_invalid_requests_get_a_failed_condition(ca_files: dict[str, Any]) -> None:
    client = FakeClient()
    signer = controller(client, ca_files)
    signer.csrs.apply(
        "ADDED",
        csr_object(
            csr_pem("system:node:n1", ["devs"]),
            signer=NODE_CLIENT,
            usages=["client auth"],
            conditions=[approved()],
        ),
    )
    await signer.reconcile("csr-1")
    [(_, path, body)] = client.calls
    assert path.endswith("/csr-1/status")
    assert "certificate" not in body["status"]
    assert body["status"]["conditions"][1] == {
        "type": "Failed",
        "status": "True",
        "reason": "SignerValidationFailure",
        "message": "subject organization is not system:nodes",
        "lastUpdateTime": "2027-01-15T08:00:00Z",
    }


async def test_without_a_ca_nothing_is_signed() -> None:
    client = FakeClient()
    signer = controller(client, {})
    signer.csrs.apply("ADDED", csr_object(csr_pem("alice"), conditions=[approved()]))
    assert await signer.reconcile("csr-1") is None
    assert client.calls == []
