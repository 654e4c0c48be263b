"""Authentication against a real `pinnace server`, with the official Python client and kubectl:
ServiceAccount tokens (TokenRequest, revocation, expiry, forged signatures), bootstrap tokens until
they expire and are cleaned up, legacy token Secrets, `kubectl create token`, `kubectl auth whoami`,
the 401 every refused credential gets, and client certificates from another CA (401 after the
handshake, as upstream)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import kubernetes
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from kubernetes.client import ApiClient, AuthenticationV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import ServerProcess

ISSUER = "https://kubernetes.default.svc.cluster.local"
UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
ENDPOINTS = ("/api", "/apis", "/api/v1/namespaces", "/api/v1/pods", "/version", "/openapi/v2", "/metrics")


def wait_for(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def ns(admin: ApiClient) -> str:
    name = f"authn-{uuid.uuid4().hex[:8]}"
    CoreV1Api(admin).create_namespace({"metadata": {"name": name}})
    return name


def token_client(server: ServerProcess, token: str) -> ApiClient:
    config = kubernetes.client.Configuration()
    config.host = server.url
    config.ssl_ca_cert = str(server.ca)
    config.api_key = {"authorization": f"Bearer {token}"}
    return ApiClient(config)


def whoami(server: ServerProcess, token: str) -> dict[str, Any]:
    """SelfSubjectReview as the token's user (allowed for every authenticated user, also under RBAC)."""
    with token_client(server, token) as client:
        review = AuthenticationV1Api(client).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        info: dict[str, Any] = review.status.user_info.to_dict()
        return info


def raw_get(server: ServerProcess, path: str, token: str) -> tuple[int, Any]:
    ctx = ssl.create_default_context(cafile=str(server.ca))
    request = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def assert_refused_everywhere(server: ServerProcess, token: str) -> None:
    for path in ENDPOINTS:
        assert raw_get(server, path, token) == (401, UNAUTHORIZED), path


def request_token(admin: ApiClient, ns: str, sa: str, **spec: Any) -> str:
    response = CoreV1Api(admin).create_namespaced_service_account_token(
        sa, ns, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    )
    token: str = response.status.token
    return token


def test_token_request_then_revocation(server: ServerProcess, admin: ApiClient, ns: str) -> None:
    core = CoreV1Api(admin)
    sa = core.create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    token = request_token(admin, ns, "robot")
    info = whoami(server, token)
    assert info["username"] == f"system:serviceaccount:{ns}:robot"
    assert info["uid"] == sa.metadata.uid
    assert info["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{ns}",
        "system:authenticated",
    ]
    assert list(info["extra"]) == ["authentication.kubernetes.io/credential-id"]

    # TokenReview agrees, and reports the audiences.
    review = AuthenticationV1Api(admin).create_token_review({"spec": {"token": token}})
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{ns}:robot"
    assert review.status.audiences == [ISSUER]

    core.delete_namespaced_service_account("robot", ns)
    wait_for(lambda: raw_get(server, "/api", token)[0] == 401, timeout=5)
    assert_refused_everywhere(server, token)
    with pytest.raises(ApiException) as info_exc:
        whoami(server, token)
    assert info_exc.value.status == 401
    # A new ServiceAccount of the same name is another account: the old token stays dead.
    core.create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    time.sleep(1.2)  # past the lookup cache's TTL
    assert raw_get(server, "/api", token)[0] == 401


def test_pod_bound_token_dies_with_its_pod(server: ServerProcess, admin: ApiClient, ns: str) -> None:
    core = CoreV1Api(admin)
    core.create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    pod = core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "nginx"}]},
        },
    )
    token = request_token(
        admin,
        ns,
        "robot",
        boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "web"},
        expirationSeconds=600,
    )
    info = whoami(server, token)
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["web"]
    assert info["extra"]["authentication.kubernetes.io/pod-uid"] == [pod.metadata.uid]
    core.delete_namespaced_pod("web", ns, grace_period_seconds=0)
    wait_for(lambda: raw_get(server, "/api", token)[0] == 401, timeout=5)


def _sign(server: ServerProcess, claims: dict[str, Any], key: Any = None) -> str:
    pem = (server.data_dir / "pki" / "sa.key").read_bytes()
    own = serialization.load_pem_private_key(pem, password=None)
    return jwt.encode({"iss": ISSUER, **claims}, key or own, algorithm="RS256")


def test_expired_and_forged_tokens(server: ServerProcess, admin: ApiClient, ns: str) -> None:
    sa = CoreV1Api(admin).create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    now = int(time.time())
    claims = {
        "sub": f"system:serviceaccount:{ns}:robot",
        "aud": [ISSUER],
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": "robot", "uid": sa.metadata.uid}},
    }
    fresh = _sign(server, {**claims, "iat": now, "nbf": now, "exp": now + 600})
    assert whoami(server, fresh)["username"] == f"system:serviceaccount:{ns}:robot"
    # Expired beyond the one-minute leeway.
    expired = _sign(server, {**claims, "iat": now - 4000, "nbf": now - 4000, "exp": now - 100})
    assert_refused_everywhere(server, expired)
    # Same claims, someone else's key.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_refused_everywhere(server, _sign(server, {**claims, "exp": now + 600}, stranger))
    # Right key, wrong audience.
    assert_refused_everywhere(server, _sign(server, {**claims, "aud": ["vault"], "exp": now + 600}))
    # Not a token at all.
    assert_refused_everywhere(server, "nonsense")


def _foreign_credential(tmp_path: Path, name: str) -> tuple[Path, Path, int]:
    """kubernetes-admin in system:masters, signed by a CA the cluster never heard of; the chain
    file carries that CA too, which must not help. Returns the files and the leaf's serial."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-admin"),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, serial


def _cert_client(server: ServerProcess, cert: Path, key: Path, token: str | None = None) -> ApiClient:
    config = kubernetes.client.Configuration()
    config.host = server.url
    config.ssl_ca_cert = str(server.ca)
    config.cert_file, config.key_file = str(cert), str(key)
    if token is not None:
        config.api_key = {"authorization": f"Bearer {token}"}
    return ApiClient(config)


def test_client_certificate_from_another_ca(server: ServerProcess, tmp_path: Path) -> None:
    """As upstream: the handshake completes (the server requests a certificate without verifying
    it), the x509 authenticator refuses it, and with no other credential that is a 401 on every
    endpoint, even those anonymous may reach: bad credentials are never anonymous."""
    cert, key, serial = _foreign_credential(tmp_path, "evil")
    ctx = ssl.create_default_context(cafile=str(server.ca))
    ctx.load_cert_chain(str(cert), str(key))
    for path in ("/api/v1/namespaces", "/api", "/version", "/healthz", "/readyz"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url + path, context=ctx, timeout=10)
        assert (info.value.code, json.loads(info.value.read())) == (401, UNAUTHORIZED), path

    response = requests.get(
        server.url + "/api", cert=(str(cert), str(key)), verify=str(server.ca), timeout=10
    )
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)

    with _cert_client(server, cert, key) as client, pytest.raises(ApiException) as api_info:
        CoreV1Api(client).list_namespace()
    assert api_info.value.status == 401
    assert json.loads(api_info.value.body) == UNAUTHORIZED
    # The reason is in the server log only, naming the certificate.
    assert f"[serial={serial:x}]" in server.log()


def test_client_certificate_from_another_ca_with_a_valid_token(
    server: ServerProcess, admin: ApiClient, ns: str, tmp_path: Path
) -> None:
    """Upstream's union goes on after the x509 error: a valid bearer token on the same request
    authenticates it (as the token's user, not the certificate's)."""
    CoreV1Api(admin).create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    token = request_token(admin, ns, "robot")
    cert, key, _ = _foreign_credential(tmp_path, "evil")
    with _cert_client(server, cert, key, token) as client:
        review = AuthenticationV1Api(client).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    assert review.status.user_info.username == f"system:serviceaccount:{ns}:robot"
    assert "system:masters" not in review.status.user_info.groups
    with _cert_client(server, cert, key, "not-a-valid-token") as client, pytest.raises(ApiException) as info:
        CoreV1Api(client).list_namespace()
    assert info.value.status == 401


def test_kubectl_with_a_certificate_from_another_ca(server: ServerProcess, tmp_path: Path) -> None:
    cert, key, serial = _foreign_credential(tmp_path, "evil-kubectl")
    config = tmp_path / "evil.kubeconfig"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": server.url, "certificate-authority": str(server.ca)}}
                ],
                "users": [{"name": "u", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )

    def last_error_line(*args: str) -> str:
        result = run_kubectl(tmp_path, str(config), *args)
        assert result.returncode == 1, result.stdout
        return result.stderr.strip().splitlines()[-1]

    # kubectl words the same 401 Status two ways: a direct request quotes its message, discovery
    # (which `get ns` goes through first) its generic text for the code; upstream gets the same.
    assert last_error_line("get", "--raw", "/api/v1/namespaces") == (
        "error: You must be logged in to the server (Unauthorized)"
    )
    assert last_error_line("auth", "whoami") == "error: You must be logged in to the server (Unauthorized)"
    assert last_error_line("get", "ns") == (
        "error: You must be logged in to the server (the server has asked for the client to provide credentials)"
    )
    # client-go sends its certificate whatever CAs the server names, so the 401 came from verifying it.
    assert f"[serial={serial:x}]" in server.log()


def _bootstrap_secret(token_id: str, expiration: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {
            "token-id": token_id,
            "token-secret": "0123456789abcdef",
            "usage-bootstrap-authentication": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
            "expiration": expiration,
        },
    }


def test_bootstrap_token_until_it_expires(server: ServerProcess, admin: ApiClient) -> None:
    core = CoreV1Api(admin)
    token_id = uuid.uuid4().hex[:6]
    token = f"{token_id}.0123456789abcdef"
    expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=6)
    core.create_namespaced_secret(
        "kube-system", _bootstrap_secret(token_id, expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    )
    info = whoami(server, token)
    assert info["username"] == f"system:bootstrap:{token_id}"
    assert info["groups"] == [
        "system:bootstrappers",
        "system:bootstrappers:kubeadm:default-node-token",
        "system:authenticated",
    ]
    # A wrong secret for a real id is refused like an unknown token.
    assert raw_get(server, "/api", f"{token_id}.0123456789abcdee") == (401, UNAUTHORIZED)
    wait_for(lambda: raw_get(server, "/api", token)[0] == 401, timeout=15, interval=0.25)
    assert dt.datetime.now(dt.UTC) >= expires

    def cleaned() -> bool:
        try:
            core.read_namespaced_secret(f"bootstrap-token-{token_id}", "kube-system")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(cleaned, timeout=15, interval=0.25)  # the tokencleaner deleted it


def test_legacy_token_secret(server: ServerProcess, admin: ApiClient, ns: str) -> None:
    core = CoreV1Api(admin)
    core.create_namespaced_service_account(ns, {"metadata": {"name": "old-school"}})
    core.create_namespaced_secret(
        ns,
        {
            "metadata": {
                "name": "old-school-token",
                "annotations": {"kubernetes.io/service-account.name": "old-school"},
            },
            "type": "kubernetes.io/service-account-token",
        },
    )

    def filled() -> dict[str, str] | None:
        data = core.read_namespaced_secret("old-school-token", ns).data or {}
        return data if {"token", "ca.crt", "namespace"} <= set(data) else None

    data = wait_for(filled)
    assert base64.b64decode(data["ca.crt"]) == server.ca.read_bytes()
    assert base64.b64decode(data["namespace"]).decode() == ns
    token = base64.b64decode(data["token"]).decode()
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == "kubernetes/serviceaccount"
    assert whoami(server, token)["username"] == f"system:serviceaccount:{ns}:old-school"
    labels = core.read_namespaced_secret("old-school-token", ns).metadata.labels or {}
    now = dt.datetime.now(dt.UTC)
    days = {(now - dt.timedelta(days=d)).strftime("%Y-%m-%d") for d in (0, 1)}  # a run across midnight
    assert labels["kubernetes.io/legacy-token-last-used"] in days
    core.delete_namespaced_service_account("old-school", ns)
    wait_for(lambda: raw_get(server, "/api", token)[0] == 401)


def test_failures_are_counted(server: ServerProcess) -> None:
    def errors_so_far() -> float:
        ctx = server.ssl_context()
        with urllib.request.urlopen(server.url + "/metrics", context=ctx, timeout=10) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            if line.startswith('authentication_attempts_total{result="error"}'):
                return float(line.split()[-1])
        return 0.0

    before = errors_so_far()
    for _ in range(3):
        assert raw_get(server, "/api", "wrong")[0] == 401
    assert errors_so_far() == before + 3


# --- kubectl ------------------------------------------------------------------------------------


def run_kubectl(tmp_path: Path, kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Real kubectl (scripts/bootstrap installs it) with a home and cache of the test's own."""
    binary = shutil.which("kubectl")
    assert binary is not None, "kubectl is not installed (scripts/bootstrap installs it)"
    env = {
        "HOME": str(tmp_path),
        "KUBECACHEDIR": str(tmp_path / "cache"),
        "PATH": "/usr/bin:/bin",
        "KUBECONFIG": kubeconfig,
    }
    return subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def kubectl(server: ServerProcess, tmp_path: Path, *args: str, token: str | None = None) -> str:
    if token is None:
        result = run_kubectl(tmp_path, str(server.kubeconfig), *args)
    else:
        auth = [f"--server={server.url}", f"--certificate-authority={server.ca}", f"--token={token}"]
        result = run_kubectl(tmp_path, "/dev/null", *auth, *args)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def test_kubectl_create_token_and_whoami(
    server: ServerProcess, admin: ApiClient, ns: str, tmp_path: Path
) -> None:
    admin_out = kubectl(server, tmp_path, "auth", "whoami")
    assert admin_out.split("\n")[1].split() == ["Username", "kubernetes-admin"]
    assert "[system:masters system:authenticated]" in admin_out

    kubectl(server, tmp_path, "-n", ns, "create", "serviceaccount", "robot")
    token = kubectl(server, tmp_path, "-n", ns, "create", "token", "robot", "--duration=15m").strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    assert claims["sub"] == f"system:serviceaccount:{ns}:robot"
    out = kubectl(server, tmp_path, "auth", "whoami", token=token)
    lines = [line.split(None, 1) for line in out.strip().splitlines()]
    assert lines[0] == ["ATTRIBUTE", "VALUE"]
    rows = {key: value.strip() for key, value in lines[1:]}
    assert rows["Username"] == f"system:serviceaccount:{ns}:robot"
    assert rows["Groups"] == f"[system:serviceaccounts system:serviceaccounts:{ns} system:authenticated]"
    assert rows["UID"]
    assert any(
        line.startswith("Extra: authentication.kubernetes.io/credential-id") for line in out.splitlines()
    )
    assert f"[JTI={claims['jti']}]" in out
    json_out = json.loads(kubectl(server, tmp_path, "auth", "whoami", "-o", "json", token=token))
    assert json_out["kind"] == "SelfSubjectReview"
    assert json_out["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:robot"
