"""User-data built from the shared contract (joinconfig.py + read.py), for tests that need some
without the renderer: a `#cloud-config` whose write_files hold the four files a node reads."""

from __future__ import annotations

import base64
import gzip
import shlex
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from node_bootstrap.agent.discovery import spki_hash
from node_bootstrap.cloudinit.joinconfig import (
    BOOTSTRAP_CONFIG_PATH,
    BOOTSTRAP_KUBECONFIG_PATH,
    CA_PATH,
    KUBELET_CONFIG_PATH,
    KUBELET_EXTRA_ARGS_PATH,
    JoinConfig,
    MachineRef,
    Step,
)

UNINITIALIZED = {
    "key": "node.cloudprovider.kubernetes.io/uninitialized",
    "value": "true",
    "effect": "NoSchedule",
}
TOKEN = "abcdef.0123456789abcdef"

STEPS = (
    Step(
        "configure-kernel",
        "modules and sysctls",
        "modprobe overlay\nmodprobe br_netfilter\nsysctl --system\n",
    ),
    Step(
        "install-containerd",
        "containerd with SystemdCgroup",
        "apt-get update\napt-get install -y --no-install-recommends containerd\n",
    ),
    Step(
        "install-kubelet",
        "kubelet and kube-proxy",
        "apt-get install -y kubelet=1.33.* kube-proxy \\\n  conntrack socat iptables\n",
    ),
    Step("start-kubelet", "start it", "systemctl daemon-reload\nsystemctl enable --now kubelet\n"),
)


def make_ca(cn: str = "pinnace-ca") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def pin_of(ca_pem: bytes) -> str:
    return spki_hash(x509.load_pem_x509_certificate(ca_pem))


def join_config(
    *,
    server: str,
    pins: Sequence[str],
    metadata: str = "local",
    template: str = "local:///{zone}/{instance_id}",
    machine: str | None = "pool-a-0",
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (UNINITIALIZED,),
    steps: Sequence[Step] = STEPS,
) -> JoinConfig:
    return JoinConfig(
        server=server,
        ca_cert_hashes=tuple(pins),
        metadata=metadata,
        provider_id_template=template,
        kubernetes_version="1.33",
        cluster_cidr="10.244.0.0/16",
        steps=tuple(steps),
        machine=MachineRef(machine, "uid-1") if machine else None,
        node_labels=dict(labels or {"infra.pinnace.dev/node-pool": "pool-a"}),
        node_taints=tuple(taints),
    )


def user_data(
    *,
    server: str = "https://127.0.0.1:6443",
    ca_pem: bytes | None = None,
    token: str = TOKEN,
    pins: Sequence[str] | None = None,
    extra_args: Sequence[str] = (
        "--cloud-provider=external",
        "--node-labels=infra.pinnace.dev/node-pool=pool-a,tier=web",
        "--kube-api-content-type=application/json",
    ),
    register_with_taints: Sequence[Mapping[str, str]] = (UNINITIALIZED,),
    kubelet_config: Mapping[str, Any] | None = None,
    ca_as_file: bool = False,
    compress: bool = False,
    **join: Any,
) -> bytes:
    ca_pem = ca_pem or make_ca()
    config = join_config(server=server, pins=[pin_of(ca_pem)] if pins is None else pins, **join)
    cluster: dict[str, Any] = {"server": server}
    if ca_as_file:
        cluster["certificate-authority"] = CA_PATH
    else:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "pinnace", "cluster": cluster}],
        "contexts": [
            {"name": "tls-bootstrap", "context": {"cluster": "pinnace", "user": "kubelet-bootstrap"}}
        ],
        "current-context": "tls-bootstrap",
        "users": [{"name": "kubelet-bootstrap", "user": {"token": token}}],
    }
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "registerWithTaints": [dict(t) for t in register_with_taints],
        **(kubelet_config or {}),
    }
    files = [
        {"path": BOOTSTRAP_CONFIG_PATH, "permissions": "0600", "content": config.to_json()},
        {"path": BOOTSTRAP_KUBECONFIG_PATH, "permissions": "0600", "content": yaml.safe_dump(kubeconfig)},
        {
            "path": KUBELET_CONFIG_PATH,
            "encoding": "gz+b64",
            "content": base64.b64encode(gzip.compress(yaml.safe_dump(kubelet).encode())).decode(),
        },
        {
            "path": KUBELET_EXTRA_ARGS_PATH,
            "content": f"KUBELET_EXTRA_ARGS={shlex.quote(' '.join(extra_args))}\n",
        },
    ]
    if ca_as_file:
        files.append({"path": CA_PATH, "encoding": "b64", "content": base64.b64encode(ca_pem).decode()})
    text = "#cloud-config\n" + yaml.safe_dump(
        {"write_files": files, "runcmd": [["/usr/local/sbin/pinnace-bootstrap"]]}
    )
    data = text.encode()
    return gzip.compress(data) if compress else data
