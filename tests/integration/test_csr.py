"""CertificateSigningRequests end to end against a real server with the CSR signer and approver in
process, driven by real kubectl: manual approval, denial, node bootstrap with a token
(auto-approved), signer validation failures; every issued certificate is then used to log in."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import REPO, ServerProcess, start_server
from .kubectl_helpers import describe

KUBECTL = "kubectl"


@pytest.fixture(scope="module")
def csr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path_factory.mktemp("pinnace-csr") / "data",
        "--controllers=csrsigning,csrapproving",
        "--disable-scheduler",
        "--cloud-provider",
        "none",
    )
    try:
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"server did not shut down cleanly ({code}):\n{proc.log()[-4000:]}"


def run(
    proc: ServerProcess, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HOME": str(proc.data_dir.parent),
        "KUBECACHEDIR": str(proc.data_dir.parent / "cache"),
    }
    result = subprocess.run(
        [
            KUBECTL,
            "--server",
            proc.url,
            "--certificate-authority",
            str(proc.ca),
            "--kubeconfig",
            os.devnull,
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(describe(result))
    return result


def admin(
    proc: ServerProcess, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(proc.kubeconfig), "HOME": str(proc.data_dir.parent)}
    result = subprocess.run(
        [KUBECTL, *args], capture_output=True, text=True, env=env, input=stdin, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(describe(result))
    return result


def new_request(cn: str, orgs: list[str], tmp: Path) -> tuple[bytes, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    key_path = tmp / f"{cn.replace(':', '_')}.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM), key_path


def manifest(name: str, pem: bytes, signer: str, usages: list[str], **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {
                "request": base64.b64encode(pem).decode(),
                "signerName": signer,
                "usages": usages,
                **spec,
            },
        }
    )


def get_csr(proc: ServerProcess, name: str) -> dict[str, Any]:
    return json.loads(admin(proc, "get", "csr", name, "-o", "json").stdout)


def wait_for(proc: ServerProcess, name: str, what: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        csr = get_csr(proc, name)
        status = csr.get("status") or {}
        types = {c["type"] for c in status.get("conditions") or []}
        if (what == "certificate" and status.get("certificate")) or what in types:
            return csr
        if time.monotonic() > deadline:
            raise AssertionError(f"CSR {name} never got {what}: {status}\n{proc.log()[-3000:]}")
        time.sleep(0.2)


def whoami(proc: ServerProcess, cert: bytes, key: Path) -> str:
    cert_path = key.with_suffix(".crt")
    cert_path.write_bytes(cert)
    out = run(
        proc, "--client-certificate", str(cert_path), "--client-key", str(key), "auth", "whoami", "-o", "json"
    )
    info = json.loads(out.stdout)["status"]["userInfo"]
    return f"{info['username']} {sorted(info.get('groups', []))}"


def test_kubectl_certificate_approve_issues_a_working_client_certificate(
    csr_server: ServerProcess, tmp_path: Path
) -> None:
    pem, key = new_request("alice", ["devs"], tmp_path)
    # the client's claims about who is asking are replaced with who is asking
    body = manifest(
        "alice",
        pem,
        "kubernetes.io/kube-apiserver-client",
        ["client auth"],
        username="mallory",
        groups=["system:masters"],
        expirationSeconds=3600,
    )
    admin(csr_server, "create", "-f", "-", stdin=body)
    csr = get_csr(csr_server, "alice")
    assert csr["spec"]["username"] == "kubernetes-admin"
    assert "system:masters" in csr["spec"]["groups"] and "mallory" not in json.dumps(csr["spec"])
    table = admin(csr_server, "get", "csr", "alice").stdout
    assert "Pending" in table and "kubernetes-admin" in table
    assert admin(csr_server, "certificate", "approve", "alice").stdout.strip() == (
        "certificatesigningrequest.certificates.k8s.io/alice approved"
    )
    csr = wait_for(csr_server, "alice", "certificate")
    [condition] = csr["status"]["conditions"]
    assert condition["type"] == "Approved" and condition["reason"] == "KubectlApprove"
    assert condition["lastUpdateTime"] and condition["lastTransitionTime"]
    cert_pem = base64.b64decode(csr["status"]["certificate"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 3600 <= lifetime.total_seconds() <= 3600 + 301  # expirationSeconds honoured, 5 min backdate
    assert whoami(csr_server, cert_pem, key) == "alice ['devs', 'system:authenticated']"
    assert "Approved,Issued" in admin(csr_server, "get", "csr", "alice").stdout


def test_denied_stays_denied_and_status_cannot_be_forged(csr_server: ServerProcess, tmp_path: Path) -> None:
    pem, _ = new_request("bob", [], tmp_path)
    admin(
        csr_server,
        "create",
        "-f",
        "-",
        stdin=manifest("bob", pem, "kubernetes.io/kube-apiserver-client", ["client auth"]),
    )
    admin(csr_server, "certificate", "deny", "bob")
    result = admin(csr_server, "certificate", "approve", "bob", check=False)
    assert result.returncode != 0 and 'certificate signing request "bob" is already Denied' in result.stderr
    # past kubectl's own check, the server refuses
    csr = get_csr(csr_server, "bob")
    csr["status"]["conditions"].append({"type": "Approved", "status": "True", "reason": "Sneaky"})
    path = "/apis/certificates.k8s.io/v1/certificatesigningrequests/bob/approval"
    result = admin(csr_server, "replace", "--raw", path, "-f", "-", stdin=json.dumps(csr), check=False)
    assert result.returncode != 0
    assert "Approved and Denied conditions are mutually exclusive" in result.stderr, result.stderr
    time.sleep(1)
    csr = get_csr(csr_server, "bob")
    assert [c["type"] for c in csr["status"]["conditions"]] == ["Denied"]
    assert "certificate" not in csr["status"]
    # a certificate written through the main resource is dropped; through /status it needs `sign`
    patch = json.dumps({"status": {"certificate": base64.b64encode(b"x").decode()}})
    admin(csr_server, "patch", "csr", "bob", "--type=merge", "-p", patch)
    assert "certificate" not in get_csr(csr_server, "bob")["status"]


def test_system_masters_client_certificates_are_refused(csr_server: ServerProcess, tmp_path: Path) -> None:
    pem, _ = new_request("root", ["system:masters"], tmp_path)
    result = admin(
        csr_server,
        "create",
        "-f",
        "-",
        stdin=manifest("root", pem, "kubernetes.io/kube-apiserver-client", ["client auth"]),
        check=False,
    )
    assert result.returncode != 0
    assert (
        "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
        in result.stderr
    )


def test_invalid_requests_are_422(csr_server: ServerProcess, tmp_path: Path) -> None:
    pem, _ = new_request("carol", [], tmp_path)
    result = admin(csr_server, "create", "-f", "-", stdin=manifest("carol", pem, "nodomain", []), check=False)
    assert result.returncode != 0
    assert "spec.usages: Required value" in result.stderr
    assert "spec.signerName: Invalid value" in result.stderr
    bad = manifest("carol", b"not a csr", "example.com/x", ["client auth"])
    result = admin(csr_server, "create", "-f", "-", stdin=bad, check=False)
    assert "PEM block type must be CERTIFICATE REQUEST" in result.stderr


def test_a_kubelet_request_that_does_not_fit_its_signer_fails(
    csr_server: ServerProcess, tmp_path: Path
) -> None:
    pem, _ = new_request("system:node:fake", ["devs"], tmp_path)
    admin(
        csr_server,
        "create",
        "-f",
        "-",
        stdin=manifest(
            "fake-node",
            pem,
            "kubernetes.io/kube-apiserver-client-kubelet",
            ["digital signature", "client auth"],
        ),
    )
    admin(csr_server, "certificate", "approve", "fake-node")
    csr = wait_for(csr_server, "fake-node", "Failed")
    failed = next(c for c in csr["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "SignerValidationFailure"
    assert failed["message"] == "subject organization is not system:nodes"
    assert "certificate" not in csr["status"]


def test_node_bootstrap_with_a_token_is_auto_approved_and_signed(
    csr_server: ServerProcess, tmp_path: Path
) -> None:
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane",
            "token",
            "create",
            "--kubeconfig",
            str(csr_server.kubeconfig),
            "--ttl",
            "10m",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    token = created.stdout.strip()
    pem, key = new_request("system:node:node-7", ["system:nodes"], tmp_path)
    body = manifest(
        "node-csr-7", pem, "kubernetes.io/kube-apiserver-client-kubelet", ["digital signature", "client auth"]
    )
    run(csr_server, "--token", token, "create", "-f", "-", stdin=body)
    csr = wait_for(csr_server, "node-csr-7", "certificate")
    assert csr["spec"]["username"] == f"system:bootstrap:{token.split('.')[0]}"
    approval = next(c for c in csr["status"]["conditions"] if c["type"] == "Approved")
    assert approval["reason"] == "AutoApproved"
    assert approval["message"] == "Auto approving kubelet client certificate after SubjectAccessReview."
    cert_pem = base64.b64decode(csr["status"]["certificate"])
    assert whoami(csr_server, cert_pem, key) == "system:node:node-7 ['system:authenticated', 'system:nodes']"
    # a bootstrap identity may not approve its own request by hand
    pem2, _ = new_request("system:node:node-8", ["system:nodes"], tmp_path)
    body2 = manifest("node-csr-8", pem2, "kubernetes.io/kube-apiserver-client", ["client auth"])
    run(csr_server, "--token", token, "create", "-f", "-", stdin=body2)
    result = run(csr_server, "--token", token, "certificate", "approve", "node-csr-8", check=False)
    assert result.returncode != 0 and "forbidden" in result.stderr.lower()


APPROVER_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: csr-approval-only}
rules:
- {apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests], verbs: [get, list]}
- {apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests/approval], verbs: [update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: csr-approval-only}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: csr-approval-only}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: approver-x}]
"""

SIGNER_WILDCARD_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: approve-kubernetes-io-signers}
rules:
- {apiGroups: [certificates.k8s.io], resources: [signers], resourceNames: ["kubernetes.io/*"], verbs: [approve]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: approve-kubernetes-io-signers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: approve-kubernetes-io-signers}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: approver-x}]
"""


def test_approving_needs_approve_on_the_signer(csr_server: ServerProcess, tmp_path: Path) -> None:
    pem, _ = new_request("dave", [], tmp_path)
    admin(
        csr_server,
        "create",
        "-f",
        "-",
        stdin=manifest("dave", pem, "kubernetes.io/kube-apiserver-client", ["client auth"]),
    )
    admin(csr_server, "apply", "-f", "-", stdin=APPROVER_RBAC)
    approver = tmp_path / "approver.kubeconfig"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane",
            "kubeconfig",
            "user",
            "--data-dir",
            str(csr_server.data_dir),
            "--client-name",
            "approver-x",
            "--out",
            str(approver),
        ],
        cwd=REPO,
        check=True,
        timeout=60,
    )

    def approve() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, "certificate", "approve", "dave"],
            capture_output=True,
            text=True,
            env={**os.environ, "KUBECONFIG": str(approver), "HOME": str(tmp_path)},
            timeout=60,
            check=False,
        )

    result = approve()
    assert result.returncode != 0
    assert (
        'user not permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client"'
        in result.stderr
    )
    # `approve` on `kubernetes.io/*` covers every signer of that domain
    admin(csr_server, "apply", "-f", "-", stdin=SIGNER_WILDCARD_RBAC)
    deadline = time.monotonic() + 10
    while (result := approve()).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert result.returncode == 0, result.stderr
    wait_for(csr_server, "dave", "certificate")
