"""Kubeconfig files for client-certificate users, in the shape kubectl and client libraries read.

Everything is embedded (`*-data` fields, base64) so the file is self-contained and can be copied
to another machine; it holds a private key, so it is written 0600 and atomically, like the PKI.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from controlplane.apiserver.pki import PKI, issue_client_cert, write_private_file

__all__ = ["render_kubeconfig", "write_admin_kubeconfig", "write_kubeconfig"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def render_kubeconfig(
    *,
    server: str,
    ca_pem: bytes,
    client_cert_pem: bytes,
    client_key_pem: bytes,
    cluster: str = "pinnace",
    user: str = "admin",
    context: str = "pinnace",
) -> dict[str, Any]:
    """The kubeconfig document (a `v1` `Config`) as a plain mapping."""
    if not server.startswith("https://"):
        # The server only speaks TLS; a plain-http kubeconfig would only ever fail to connect.
        raise ValueError(f"kubeconfig server must be an https:// URL, got {server!r}")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": cluster,
                "cluster": {"certificate-authority-data": _b64(ca_pem), "server": server},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client_cert_pem),
                    "client-key-data": _b64(client_key_pem),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
    }


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_pem: bytes,
    client_cert_pem: bytes,
    client_key_pem: bytes,
    cluster: str = "pinnace",
    user: str = "admin",
    context: str = "pinnace",
) -> None:
    document = render_kubeconfig(
        server=server,
        ca_pem=ca_pem,
        client_cert_pem=client_cert_pem,
        client_key_pem=client_key_pem,
        cluster=cluster,
        user=user,
        context=context,
    )
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    write_private_file(path, text.encode("utf-8"))


def write_admin_kubeconfig(pki: PKI, path: Path, server: str) -> None:
    """The cluster-admin kubeconfig (CN `kubernetes-admin`, O `system:masters`)."""
    write_kubeconfig(
        path,
        server=server,
        ca_pem=pki.ca_pem(),
        client_cert_pem=pki.admin_cert.read_bytes(),
        client_key_pem=pki.admin_key.read_bytes(),
    )


def user_kubeconfig(
    pki: PKI, admin_kubeconfig: Path, client_name: str, organizations: list[str], *, days: int = 365
) -> str:
    """A kubeconfig for a new client certificate signed by the cluster CA (kubeadm's `kubeconfig
    user`): CN = `client_name`, O = `organizations`, pointing at the admin kubeconfig's server."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    server = str(admin["clusters"][0]["cluster"]["server"])
    cert, key = issue_client_cert(pki, client_name, organizations, days=days)
    document = render_kubeconfig(
        server=server,
        ca_pem=pki.ca_pem(),
        client_cert_pem=cert,
        client_key_pem=key,
        user=client_name,
        context=f"{client_name}@pinnace",
    )
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
