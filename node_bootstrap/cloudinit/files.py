"""The contents of the files cloud-init writes: kernel and runtime settings, the kubelet's and
kube-proxy's configurations and kubeconfigs, their systemd units.

Only the bootstrap kubeconfig holds a credential, and that is the short-lived bootstrap token:
the kubelet trades it for a client certificate (CSR), and kube-proxy uses that certificate.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from node_bootstrap.cloudinit.joinconfig import (
    BOOTSTRAP_KUBECONFIG_PATH,
    CA_PATH,
    KUBE_PROXY_CONFIG_PATH,
    KUBELET_CONFIG_PATH,
    KUBELET_EXTRA_ARGS_PATH,
)
from node_bootstrap.cloudinit.spec import BootstrapSpec

__all__ = [
    "CONTAINERD_CONFIG_V2",
    "CONTAINERD_CONFIG_V3",
    "CONTAINERD_SOCKET",
    "KUBELET_CLIENT_CERT",
    "KUBELET_DROPIN_PATH",
    "KUBELET_KUBECONFIG_PATH",
    "KUBE_PROXY_BIN",
    "KUBE_PROXY_KUBECONFIG_PATH",
    "KUBE_PROXY_UNIT_PATH",
    "MODULES_LOAD_PATH",
    "SYSCTL_PATH",
    "bootstrap_kubeconfig",
    "containerd_config_v2",
    "containerd_config_v3",
    "kube_proxy_config",
    "kube_proxy_kubeconfig",
    "kubelet_config",
    "kubelet_dropin",
    "kubelet_extra_args",
]

MODULES_LOAD_PATH = "/etc/modules-load.d/k8s.conf"
SYSCTL_PATH = "/etc/sysctl.d/k8s.conf"
# Both schemas are written; configure-containerd installs the one the installed containerd reads.
CONTAINERD_CONFIG_V2 = "/etc/pinnace/containerd/config-v2.toml"
CONTAINERD_CONFIG_V3 = "/etc/pinnace/containerd/config-v3.toml"
CONTAINERD_SOCKET = "unix:///run/containerd/containerd.sock"
KUBELET_DROPIN_PATH = "/etc/systemd/system/kubelet.service.d/10-pinnace.conf"
# Written by the kubelet once its CSR is approved (kubeadm's path for it).
KUBELET_KUBECONFIG_PATH = "/etc/kubernetes/kubelet.conf"
KUBELET_CLIENT_CERT = "/var/lib/kubelet/pki/kubelet-client-current.pem"
KUBE_PROXY_BIN = "/usr/local/bin/kube-proxy"
KUBE_PROXY_KUBECONFIG_PATH = "/var/lib/kube-proxy/kubeconfig.conf"
KUBE_PROXY_UNIT_PATH = "/etc/systemd/system/kube-proxy.service"
CNI_BIN_DIR = "/opt/cni/bin"
CNI_CONF_DIR = "/etc/cni/net.d"

MODULES_LOAD = "overlay\nbr_netfilter\n"
SYSCTL = "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n"


def _yaml(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False)


def containerd_config_v2(spec: BootstrapSpec) -> str:
    """containerd 1.x (config version 2): what Debian 12 (1.6) and Ubuntu 22.04 / 24.04 (1.7) ship."""
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
disabled_plugins = []

{cri}]
  sandbox_image = "{spec.pause_image}"

{cri}.containerd]
  default_runtime_name = "runc"

{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = true

{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{CNI_CONF_DIR}"
"""


def containerd_config_v3(spec: BootstrapSpec) -> str:
    """containerd 2.x (config version 3: the CRI plugin split into images and runtime)."""
    runtime = "[plugins.'io.containerd.cri.v1.runtime'"
    return f"""\
version = 3
disabled_plugins = []

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '{spec.pause_image}'

{runtime}.containerd]
  default_runtime_name = 'runc'

{runtime}.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'

{runtime}.containerd.runtimes.runc.options]
  SystemdCgroup = true

{runtime}.cni]
  bin_dir = '{CNI_BIN_DIR}'
  conf_dir = '{CNI_CONF_DIR}'
"""


def kubelet_config(spec: BootstrapSpec) -> dict[str, Any]:
    """KubeletConfiguration (v1beta1); the pod CIDR is the CNI's business, so none is set."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": CA_PATH},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "systemd",
        "clusterDNS": [spec.cluster_dns],
        "clusterDomain": spec.cluster_domain,
        "containerRuntimeEndpoint": CONTAINERD_SOCKET,
        "registerWithTaints": spec.taint_list,
        "rotateCertificates": True,
        # Off, as kubeadm leaves it: with it on, the kubelet serves nothing until a
        # kubernetes.io/kubelet-serving CSR is approved, and no in-tree approver signs those
        # (kubectl logs/exec would hang on every new node). The kubelet self-signs instead.
        "serverTLSBootstrap": False,
    }


def kubelet_extra_args(spec: BootstrapSpec) -> tuple[str, ...]:
    """The flags in /etc/default/kubelet; pinnace-bootstrap adds --provider-id and --hostname-override."""
    args = [
        "--cloud-provider=external",
        "--kube-api-content-type=application/json",
        f"--bootstrap-kubeconfig={BOOTSTRAP_KUBECONFIG_PATH}",
        f"--kubeconfig={KUBELET_KUBECONFIG_PATH}",
    ]
    if spec.node_labels:
        args.append("--node-labels=" + ",".join(f"{k}={v}" for k, v in spec.node_labels.items()))
    return tuple(args)


def kubelet_defaults(spec: BootstrapSpec) -> str:
    return f"KUBELET_EXTRA_ARGS={shlex.quote(' '.join(kubelet_extra_args(spec)))}\n"


def kubelet_dropin() -> str:
    # The kubelet package's unit runs a bare /usr/bin/kubelet (kubeadm's drop-in is in the kubeadm
    # package, which nodes do not need); this one adds the configuration and the flags.
    return f"""\
[Service]
EnvironmentFile=-{KUBELET_EXTRA_ARGS_PATH}
ExecStart=
ExecStart=/usr/bin/kubelet --config={KUBELET_CONFIG_PATH} $KUBELET_EXTRA_ARGS
"""


def _kubeconfig(server: str, user_name: str, user: dict[str, str]) -> str:
    return _yaml(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "pinnace", "cluster": {"server": server, "certificate-authority": CA_PATH}}
            ],
            "contexts": [
                {"name": f"{user_name}@pinnace", "context": {"cluster": "pinnace", "user": user_name}}
            ],
            "current-context": f"{user_name}@pinnace",
            "users": [{"name": user_name, "user": user}],
        }
    )


def bootstrap_kubeconfig(spec: BootstrapSpec) -> str:
    """kubeadm's bootstrap-kubelet.conf: the bootstrap token, the CA by path."""
    return _kubeconfig(spec.server, "tls-bootstrap-token-user", {"token": spec.token})


def kube_proxy_kubeconfig(spec: BootstrapSpec) -> str:
    """kube-proxy authenticates with the kubelet's rotated client certificate (its key is in the same file)."""
    return _kubeconfig(
        spec.server,
        "kube-proxy",
        {"client-certificate": KUBELET_CLIENT_CERT, "client-key": KUBELET_CLIENT_CERT},
    )


def kube_proxy_config(spec: BootstrapSpec) -> str:
    """KubeProxyConfiguration; pinnace-bootstrap appends hostnameOverride (the node's name)."""
    return _yaml(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"contentType": "application/json", "kubeconfig": KUBE_PROXY_KUBECONFIG_PATH},
            "clusterCIDR": spec.cluster_cidr,
            "mode": spec.kube_proxy_mode,
        }
    )


def kube_proxy_unit() -> str:
    return f"""\
[Unit]
Description=kube-proxy: the Kubernetes network proxy
Documentation=https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/
Wants=network-online.target
After=network-online.target kubelet.service

[Service]
ExecStart={KUBE_PROXY_BIN} --config={KUBE_PROXY_CONFIG_PATH}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""
