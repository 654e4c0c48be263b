"""The agent's serving certificate and client CA handling."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node_bootstrap.agent.certs import (
    ca_from_kubeconfig,
    load_or_create_serving_cert,
    self_signed_serving_cert,
    server_ssl_context,
)


def test_serving_cert_names_the_nodes_and_is_signed_by_its_own_ca() -> None:
    chain, key = self_signed_serving_cert("n1", ["localhost", "n1"], ["127.0.0.1", "10.0.0.5"])
    leaf, ca = x509.load_pem_x509_certificates(chain)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "n1"}
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.0.0.5"}
    assert leaf.issuer == ca.subject
    assert leaf.subject.rfc4514_string().startswith("CN=n1@")
    leaf.verify_directly_issued_by(ca)
    assert b"PRIVATE KEY" in key


def test_kept_under_the_data_dir_until_the_names_change(tmp_path: Path) -> None:
    first = load_or_create_serving_cert(tmp_path, "n1", ["n1"], ["127.0.0.1"])
    assert (tmp_path / "pki" / "kubelet.key").stat().st_mode & 0o777 == 0o600
    assert load_or_create_serving_cert(tmp_path, "n1", ["n1"], ["127.0.0.1"]) == first
    assert load_or_create_serving_cert(tmp_path, "n1", ["n1", "n2"], ["127.0.0.1"]) != first


def test_client_ca_from_a_kubeconfig(tmp_path: Path) -> None:
    chain, key = self_signed_serving_cert("ca-holder", ["x"], [])
    ca_pem = x509.load_pem_x509_certificates(chain)[1].public_bytes(serialization.Encoding.PEM)
    doc = {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [
            {
                "name": "k",
                "cluster": {
                    "server": "https://x",
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": "u", "user": {}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    assert ca_from_kubeconfig(path) == ca_pem
    ctx = server_ssl_context(chain, key, ca_pem)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
