"""On the shared server: the bootstrap signer as its controller manager runs it (under its RBAC),
and a second CSR cleaner in-process with a short polling interval (the server's own sweeps hourly)."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane.api import errors
from controlplane.api.bootstrap_jws import detached_token_is_valid
from controlplane.client import Client
from controlplane.controllers.csrcleaner import CSRCleanerController
from controlplane.controllers.csrsigning import CSRS
from controlplane.controllers.runtime import ControllerConfig, R, rfc3339
from tests.integration.conftest import ServerProcess
from tests.integration.controller_harness import client_for, eventually, running


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _token(token_id: str, secret: str, *, signing: bool) -> dict[str, Any]:
    data = {
        "token-id": _b64(token_id),
        "token-secret": _b64(secret),
        "usage-bootstrap-authentication": _b64("true"),
    }
    if signing:
        data["usage-bootstrap-signing"] = _b64("true")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"bootstrap-token-{token_id}"},
        "type": "bootstrap.kubernetes.io/token",
        "data": data,
    }


async def _cluster_info(client: Client) -> dict[str, str]:
    configmap = await client.get(R.CONFIGMAPS, "cluster-info", "kube-public")
    return dict(configmap.get("data") or {})


async def test_bootstrapsigner_signs_cluster_info(server: ServerProcess) -> None:
    signer_id, other_id = uuid.uuid4().hex[:6], uuid.uuid4().hex[:6]
    secret = "0123456789abcdef"
    async with client_for(server) as client:
        await client.create(R.SECRETS, _token(other_id, secret, signing=False), "kube-system")
        await client.create(R.SECRETS, _token(signer_id, secret, signing=True), "kube-system")
        try:

            async def signed() -> dict[str, str] | None:
                data = await _cluster_info(client)
                return data if f"jws-kubeconfig-{signer_id}" in data else None

            data = await eventually(signed)
            assert detached_token_is_valid(
                data[f"jws-kubeconfig-{signer_id}"], data["kubeconfig"], signer_id, secret
            )
            assert f"jws-kubeconfig-{other_id}" not in data
        finally:
            await client.delete(R.SECRETS, f"bootstrap-token-{other_id}", "kube-system")
            await client.delete(R.SECRETS, f"bootstrap-token-{signer_id}", "kube-system")

        async def unsigned() -> bool:
            return f"jws-kubeconfig-{signer_id}" not in await _cluster_info(client)

        await eventually(unsigned)


def _csr(name: str) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(),
            "signerName": "example.com/test",
            "usages": ["client auth"],
        },
    }


async def test_csrcleaner_deletes_long_denied_requests(server: ServerProcess) -> None:
    suffix = uuid.uuid4().hex[:6]
    old, fresh, pending = f"old-denied-{suffix}", f"new-denied-{suffix}", f"pending-{suffix}"
    async with client_for(server) as client:
        for name in (old, fresh, pending):
            await client.create(CSRS, _csr(name))
        now = dt.datetime.now(dt.UTC)
        for name, updated in ((old, now - dt.timedelta(hours=2)), (fresh, now)):
            csr = await client.get(CSRS, name)
            csr["status"] = {
                "conditions": [
                    {
                        "type": "Denied",
                        "status": "True",
                        "reason": "Test",
                        "message": "no",
                        "lastUpdateTime": rfc3339(updated),
                    }
                ]
            }
            await client.request("PUT", CSRS.url(None, name, "approval"), body=csr)

        config = ControllerConfig(extra={"csr_cleaner_polling_interval": 0.2})
        async with running(server, [CSRCleanerController], config=config):

            async def gone() -> bool:
                try:
                    await client.get(CSRS, old)
                except errors.NotFound:
                    return True
                return False

            await eventually(gone)
        for name in (fresh, pending):  # a denial of now and a fresh pending request stay
            assert (await client.get(CSRS, name))["metadata"]["name"] == name
            await client.delete(CSRS, name)
