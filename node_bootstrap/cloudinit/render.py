"""`render(spec)`: the `#cloud-config` user-data of one node; `user_data(spec)`: its bytes for a cloud.

cloud-init writes every file (`write_files`) and then runs `pinnace-bootstrap` (`runcmd`), which
plays the steps of `/etc/pinnace/bootstrap.json` and reports each to the Machine. The steps, not
cloud-init's own modules, install the packages, so that each outcome is reported with its log.

Deterministic: the same spec gives the same bytes (the gzip stream has no timestamp), so a
Machine's user-data can be compared with what its NodePool would render now.
"""

from __future__ import annotations

import gzip
from importlib import resources
from typing import Any

import yaml

from node_bootstrap.cloudinit import files
from node_bootstrap.cloudinit.joinconfig import (
    BOOTSTRAP_CONFIG_PATH,
    BOOTSTRAP_KUBECONFIG_PATH,
    BOOTSTRAP_SCRIPT_PATH,
    CA_PATH,
    KUBE_PROXY_CONFIG_PATH,
    KUBELET_CONFIG_PATH,
    KUBELET_EXTRA_ARGS_PATH,
    JoinConfig,
)
from node_bootstrap.cloudinit.spec import BootstrapSpec
from node_bootstrap.cloudinit.steps import steps

__all__ = ["EC2_USER_DATA_LIMIT", "join_config", "render", "runner_script", "user_data"]

# EC2 refuses user-data above 16 KiB (before its base64 encoding); cloud-init gunzips by itself.
EC2_USER_DATA_LIMIT = 16384


def runner_script() -> str:
    """The text of `pinnace-bootstrap` (runner.py, shipped as it is)."""
    return resources.files("node_bootstrap.cloudinit").joinpath("runner.py").read_text(encoding="utf-8")


def join_config(spec: BootstrapSpec) -> JoinConfig:
    return JoinConfig(
        server=spec.server,
        ca_cert_hashes=spec.ca_cert_hashes,
        metadata=spec.metadata,
        provider_id_template=spec.provider_id_template,
        kubernetes_version=spec.kubernetes_version,
        cluster_cidr=spec.cluster_cidr,
        steps=steps(spec),
        machine=spec.machine,
        node_labels=spec.node_labels,
        node_taints=spec.node_taints,
    )


def _files(spec: BootstrapSpec) -> list[tuple[str, str, str]]:
    """(path, permissions, content) in the order cloud-init writes them."""
    kubelet_config = yaml.dump(files.kubelet_config(spec), Dumper=yaml.CSafeDumper, sort_keys=False)
    return [
        (files.MODULES_LOAD_PATH, "0644", files.MODULES_LOAD),
        (files.SYSCTL_PATH, "0644", files.SYSCTL),
        (files.CONTAINERD_CONFIG_V2, "0644", files.containerd_config_v2(spec)),
        (files.CONTAINERD_CONFIG_V3, "0644", files.containerd_config_v3(spec)),
        (CA_PATH, "0644", spec.ca_pem.decode()),
        (BOOTSTRAP_KUBECONFIG_PATH, "0600", files.bootstrap_kubeconfig(spec)),
        (KUBELET_CONFIG_PATH, "0644", kubelet_config),
        (KUBELET_EXTRA_ARGS_PATH, "0644", files.kubelet_defaults(spec)),
        (files.KUBELET_DROPIN_PATH, "0644", files.kubelet_dropin()),
        (KUBE_PROXY_CONFIG_PATH, "0644", files.kube_proxy_config(spec)),
        (files.KUBE_PROXY_KUBECONFIG_PATH, "0600", files.kube_proxy_kubeconfig(spec)),
        (files.KUBE_PROXY_UNIT_PATH, "0644", files.kube_proxy_unit()),
        (BOOTSTRAP_CONFIG_PATH, "0600", join_config(spec).to_json()),
        (BOOTSTRAP_SCRIPT_PATH, "0755", runner_script()),
    ]


class _Dumper(yaml.CSafeDumper):
    """Multi-line strings as literal blocks, so that the files read as they will be on disk."""


def _str(dumper: _Dumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(spec: BootstrapSpec) -> str:
    """The `#cloud-config` document (text) for `spec`."""
    doc: dict[str, Any] = {
        "write_files": [
            {"path": path, "owner": "root:root", "permissions": mode, "content": content}
            for path, mode, content in _files(spec)
        ],
        "runcmd": [[BOOTSTRAP_SCRIPT_PATH]],
    }
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=False)
    machine = f", machine {spec.machine.name}" if spec.machine else ""
    header = (
        "#cloud-config\n"
        f"# pinnace node bootstrap: Kubernetes {spec.kubernetes_version} on {spec.os}{machine}\n"
        f"# joins {spec.server} with a short-lived bootstrap token; steps: {BOOTSTRAP_CONFIG_PATH}\n"
    )
    return header + body


def user_data(spec: BootstrapSpec, *, compress: bool | None = None) -> bytes:
    """`render(spec)` as bytes, gzip-compressed when above EC2's 16 KiB (`compress=None`) or when asked."""
    data = render(spec).encode()
    if compress or (compress is None and len(data) > EC2_USER_DATA_LIMIT):
        return gzip.compress(data, compresslevel=9, mtime=0)
    return data
