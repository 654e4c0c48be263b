"""Specs the cloud-init tests render: a fixed CA (golden/ca.crt, no key anywhere) so renderings are stable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node_bootstrap.cloudinit.joinconfig import MachineRef
from node_bootstrap.cloudinit.spec import BootstrapSpec, PackageSource

GOLDEN = Path(__file__).parent / "golden"
CA_PEM = (GOLDEN / "ca.crt").read_bytes()
TOKEN = "abcdef.0123456789abcdef"
SERVER = "https://10.0.0.1:6443"
MIRROR_FINGERPRINT = "0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567"


def make_spec(**overrides: Any) -> BootstrapSpec:
    fields: dict[str, Any] = {
        "os": "ubuntu-24.04",
        "kubernetes_version": "1.33",
        "server": SERVER,
        "ca_pem": CA_PEM,
        "token": TOKEN,
        "metadata": "aws",
    }
    fields.update(overrides)
    return BootstrapSpec(**fields)


# name -> spec of every golden rendering: one per OS, then one per option set.
GOLDEN_SPECS: dict[str, BootstrapSpec] = {
    "ubuntu-22.04": make_spec(os="ubuntu-22.04"),
    "ubuntu-24.04": make_spec(os="ubuntu-24.04"),
    "debian-12": make_spec(os="debian-12"),
    "local-machine-labels-taints": make_spec(
        kubernetes_version="1.33.2",
        metadata="local",
        machine=MachineRef("pool-a-x7k2p", uid="0d6f3c2e-1111-2222-3333-444455556666"),
        node_labels={"infra.pinnace.dev/node-pool": "pool-a", "node.kubernetes.io/instance-type": "m5.large"},
        node_taints=({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},),
        cluster_cidr="10.244.0.0/16,fd00:10:244::/56",
        cluster_dns="10.100.0.10",
    ),
    "mirror": make_spec(
        os="debian-12",
        kubernetes_version="1.32.4",
        package_source=PackageSource(
            type="mirror",
            url="https://mirror.example.com/k8s/v{minor}/deb/",
            key_fingerprint=MIRROR_FINGERPRINT,
            binary_url="https://mirror.example.com/dl",
        ),
    ),
    "offline": make_spec(
        os="ubuntu-22.04",
        package_source=PackageSource(type="offline", url="file:///opt/pinnace/packages"),
        pause_image="registry.example.com/pause:3.10",
    ),
}
