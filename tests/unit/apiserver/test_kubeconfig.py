"""The admin kubeconfig: file shape and mode, and that real clients (the kubernetes Python client,
kubectl) load it and authenticate with it over TLS."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from controlplane.api import errors
from controlplane.apiserver.authn import ClientCertAuthenticator, UnionAuthenticator, require_user
from controlplane.apiserver.kubeconfig import render_kubeconfig, write_admin_kubeconfig, write_kubeconfig
from controlplane.apiserver.pki import PKI, ensure_pki, issue_client_cert, server_ssl_context

REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return ensure_pki(tmp_path_factory.mktemp("data") / "pki", hostnames=[], ips=[])


@pytest.fixture
async def server_url(pki: PKI) -> AsyncIterator[str]:
    """A tiny HTTPS server answering SelfSubjectReview with whoever authenticated, as upstream."""
    authenticator = UnionAuthenticator([ClientCertAuthenticator()])

    async def review(request: web.Request) -> web.Response:
        try:
            user = await require_user(authenticator, request)
        except errors.StatusError as exc:
            return web.json_response(exc.to_status(), status=exc.code)
        # The request body is ignored: kubectl sends it as protobuf, the Python client as JSON.
        review = {
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "status": {"userInfo": {"username": user.name, "groups": list(user.groups)}},
        }
        return web.json_response(review, status=201)

    app = web.Application()
    app.router.add_post(REVIEWS, review)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(pki))
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def test_admin_kubeconfig_file(pki: PKI, tmp_path: Path) -> None:
    path = tmp_path / "conf" / "admin.kubeconfig"
    write_admin_kubeconfig(pki, path, "https://127.0.0.1:6443")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    doc = yaml.safe_load(path.read_text())
    assert doc["kind"] == "Config" and doc["apiVersion"] == "v1"
    assert doc["current-context"] == "pinnace"
    assert doc["contexts"] == [{"name": "pinnace", "context": {"cluster": "pinnace", "user": "admin"}}]
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca_pem()
    user = doc["users"][0]["user"]
    assert base64.b64decode(user["client-certificate-data"]) == pki.admin_cert.read_bytes()
    assert base64.b64decode(user["client-key-data"]) == pki.admin_key.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == ["admin.kubeconfig"]


def test_custom_names_and_https_only() -> None:
    doc = render_kubeconfig(
        server="https://api.example.com",
        ca_pem=b"ca",
        client_cert_pem=b"cert",
        client_key_pem=b"key",
        cluster="c",
        user="u",
        context="ctx",
    )
    assert doc["clusters"][0]["name"] == "c" and doc["users"][0]["name"] == "u"
    assert doc["contexts"][0] == {"name": "ctx", "context": {"cluster": "c", "user": "u"}}
    with pytest.raises(ValueError, match="https://"):
        render_kubeconfig(server="http://127.0.0.1:8080", ca_pem=b"", client_cert_pem=b"", client_key_pem=b"")


def _whoami_with_python_client(kubeconfig: Path) -> Any:
    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    with k8s_client.ApiClient(configuration) as api:
        review = k8s_client.AuthenticationV1Api(api).create_self_subject_review(
            k8s_client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
        )
    assert review.status is not None
    return review.status.user_info


async def test_python_client_loads_the_kubeconfig_and_authenticates(
    pki: PKI, server_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "admin.kubeconfig"
    write_admin_kubeconfig(pki, path, server_url)
    user_info = await asyncio.to_thread(_whoami_with_python_client, path)
    assert user_info.username == "kubernetes-admin"
    assert user_info.groups == ["system:masters", "system:authenticated"]


async def test_python_client_with_an_issued_credential(pki: PKI, server_url: str, tmp_path: Path) -> None:
    cert_pem, key_pem = issue_client_cert(pki, "jane", ["devs"])
    path = tmp_path / "jane.kubeconfig"
    write_kubeconfig(
        path,
        server=server_url,
        ca_pem=pki.ca_pem(),
        client_cert_pem=cert_pem,
        client_key_pem=key_pem,
        user="jane",
    )
    user_info = await asyncio.to_thread(_whoami_with_python_client, path)
    assert user_info.username == "jane"
    assert user_info.groups == ["devs", "system:authenticated"]


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
async def test_kubectl_uses_the_kubeconfig(pki: PKI, server_url: str, tmp_path: Path) -> None:
    path = tmp_path / "admin.kubeconfig"
    write_admin_kubeconfig(pki, path, server_url)
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(path),
        "auth",
        "whoami",
        "-o",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, stderr.decode()
    review = json.loads(stdout)
    assert review["status"]["userInfo"]["username"] == "kubernetes-admin"
    assert "system:masters" in review["status"]["userInfo"]["groups"]
