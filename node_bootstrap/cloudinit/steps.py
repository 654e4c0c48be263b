"""The bootstrap steps: stable kebab-case names and the bash each one runs (`bash -euo pipefail`).

The runner reports every step by name to the Machine's status (the operator turns each into a
condition, `install-kubelet` -> `InstallKubelet`), so the names are part of the API: add new
ones, never rename. The files the steps use are written by cloud-init beforehand (`files.py`).
"""

from __future__ import annotations

import shlex

from node_bootstrap.cloudinit.files import (
    CONTAINERD_CONFIG_V2,
    CONTAINERD_CONFIG_V3,
    KUBE_PROXY_BIN,
    KUBELET_CLIENT_CERT,
)
from node_bootstrap.cloudinit.joinconfig import BOOTSTRAP_SCRIPT_PATH, Step
from node_bootstrap.cloudinit.spec import BootstrapSpec

__all__ = [
    "STEPS",
    "STEP_CONFIGURE_CONTAINERD",
    "STEP_DISABLE_SWAP",
    "STEP_INSTALL_CONTAINERD",
    "STEP_INSTALL_KUBELET",
    "STEP_INSTALL_KUBE_PROXY",
    "STEP_INSTANCE_METADATA",
    "STEP_KERNEL_MODULES",
    "STEP_PACKAGE_SOURCE",
    "STEP_START_KUBELET",
    "STEP_START_KUBE_PROXY",
    "STEP_SYSCTL",
    "steps",
]

STEP_INSTANCE_METADATA = "instance-metadata"
STEP_KERNEL_MODULES = "kernel-modules"
STEP_SYSCTL = "sysctl"
STEP_DISABLE_SWAP = "disable-swap"
STEP_PACKAGE_SOURCE = "package-source"
STEP_INSTALL_CONTAINERD = "install-containerd"
STEP_CONFIGURE_CONTAINERD = "configure-containerd"
STEP_INSTALL_KUBELET = "install-kubelet"
STEP_INSTALL_KUBE_PROXY = "install-kube-proxy"
STEP_START_KUBELET = "start-kubelet"
STEP_START_KUBE_PROXY = "start-kube-proxy"

# In the order they run: who the instance is first (cheap, and everything after needs a working
# network), then the kernel, then the packages, then the services.
STEPS = (
    STEP_INSTANCE_METADATA,
    STEP_KERNEL_MODULES,
    STEP_SYSCTL,
    STEP_DISABLE_SWAP,
    STEP_PACKAGE_SOURCE,
    STEP_INSTALL_CONTAINERD,
    STEP_CONFIGURE_CONTAINERD,
    STEP_INSTALL_KUBELET,
    STEP_INSTALL_KUBE_PROXY,
    STEP_START_KUBELET,
    STEP_START_KUBE_PROXY,
)

KEYRING = "/etc/apt/keyrings/pinnace-kubernetes.gpg"
APT_LIST = "/etc/apt/sources.list.d/pinnace-kubernetes.list"
# Waits for dpkg's lock (unattended-upgrades often holds it on a first boot) instead of failing.
APT_GET = "apt-get -q -y -o DPkg::Lock::Timeout=600"
APT_INSTALL = f"{APT_GET} -o Dpkg::Options::=--force-confold install --no-install-recommends"
# How long the kubelet may take to get its client certificate through the bootstrap token's CSR.
JOIN_TIMEOUT_SECONDS = 600

_KERNEL_MODULES = """\
modprobe overlay
modprobe br_netfilter
"""

_SYSCTL = """\
sysctl --system >/dev/null
for key in net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables net.ipv4.ip_forward; do
  [ "$(sysctl -n "$key")" = 1 ] || { echo "$key is not 1" >&2; exit 1; }
done
"""

# Swap off now, out of fstab and masked (a generated .swap unit would turn it on at the next boot).
_DISABLE_SWAP = r"""swapoff -a
sed -ri '/^\s*[^#]\S*\s+\S+\s+swap\s/s/^/#/' /etc/fstab
for unit in $(systemctl list-units --type=swap --all --plain --no-legend | awk '{print $1}'); do
  systemctl mask "$unit"
done
systemctl mask swap.target
[ -z "$(swapon --show --noheadings)" ] || { echo "swap is still on" >&2; swapon --show >&2; exit 1; }
"""

_CONFIGURE_CONTAINERD = f"""\
version=$(containerd --version | awk '{{print $3}}')
major=${{version#v}}; major=${{major%%.*}}
# containerd 2.x reads config version 3; the 1.x that Debian 12 (1.6) and Ubuntu 22.04/24.04 (1.7) ship read version 2
if [ "$major" -ge 2 ]; then config={CONTAINERD_CONFIG_V3}; else config={CONTAINERD_CONFIG_V2}; fi
install -D -m 0644 "$config" /etc/containerd/config.toml
systemctl enable containerd
systemctl restart containerd
for _ in $(seq 30); do [ -S /run/containerd/containerd.sock ] && break; sleep 1; done
ctr --timeout 10s plugins ls | awk '$2 == "cri" && $NF == "ok" {{found = 1}} END {{exit !found}}' \\
  || {{ echo "containerd's CRI plugin is not running" >&2; ctr plugins ls >&2; exit 1; }}
echo "containerd $version configured from $config"
"""

_START_KUBELET = f"""\
# systemd-resolved's stub (127.0.0.53) would loop through CoreDNS: give pods the real resolvers, as kubeadm does
if systemctl is-active --quiet systemd-resolved && ! grep -q '^resolvConf:' /var/lib/kubelet/config.yaml; then
  echo 'resolvConf: /run/systemd/resolve/resolv.conf' >> /var/lib/kubelet/config.yaml
fi
systemctl daemon-reload
systemctl enable kubelet
systemctl restart kubelet
for _ in $(seq {JOIN_TIMEOUT_SECONDS}); do
  if [ -s {KUBELET_CLIENT_CERT} ]; then echo "kubelet joined"; exit 0; fi
  sleep 1
done
echo "the kubelet got no client certificate in {JOIN_TIMEOUT_SECONDS}s" >&2
journalctl -u kubelet -n 20 --no-pager >&2
exit 1
"""

_START_KUBE_PROXY = """\
systemctl daemon-reload
systemctl enable kube-proxy
systemctl restart kube-proxy
sleep 5
systemctl is-active --quiet kube-proxy || { journalctl -u kube-proxy -n 20 --no-pager >&2; exit 1; }
echo "kube-proxy running"
"""


def _os_check(spec: BootstrapSpec) -> str:
    # The steps work on all three; a mismatch is worth a line in the log, not a failure.
    return f"""\
. /etc/os-release
[ "$ID-${{VERSION_ID:-}}" = {spec.os} ] || echo "warning: rendered for {spec.os}, running on $ID-${{VERSION_ID:-}}" >&2
"""


def _package_source(spec: BootstrapSpec) -> str:
    source = spec.package_source
    if source.type == "offline":
        directory = shlex.quote(source.directory)
        return f"""\
[ -f {directory}/Packages ] || {{ echo "{source.directory}/Packages is missing (dpkg-scanpackages . > Packages)" >&2; exit 1; }}
if [ -f {directory}/SHA256SUMS ]; then (cd {directory} && sha256sum --quiet -c SHA256SUMS); fi
echo "deb [trusted=yes] {source.apt_url(spec.minor)} ./" > {APT_LIST}
# only the local repository: there is no network to refresh the others from
{APT_GET} -o Dir::Etc::SourceList={APT_LIST} -o Dir::Etc::SourceParts=- update
"""
    minor = spec.minor
    return f"""\
{APT_GET} update
{APT_INSTALL} ca-certificates curl gpg
export GNUPGHOME=$(mktemp -d)
curl -fsSL --retry 5 -o "$GNUPGHOME/key" {shlex.quote(source.apt_key_url(minor))}
gpg --batch --quiet --import "$GNUPGHOME/key"
# trust only the pinned key, whatever else the file holds
gpg --batch --list-keys {source.fingerprint()} >/dev/null \\
  || {{ echo "the key at {source.apt_key_url(minor)} is not {source.fingerprint()}" >&2; exit 1; }}
install -d -m 0755 /etc/apt/keyrings
gpg --batch --export {source.fingerprint()} > {KEYRING}
chmod 0644 {KEYRING}
rm -rf "$GNUPGHOME"
echo "deb [signed-by={KEYRING}] {source.apt_url(minor)} /" > {APT_LIST}
{APT_GET} update
"""


def _install_kubelet(spec: BootstrapSpec) -> str:
    packages = "conntrack socat iptables cri-tools kubernetes-cni"
    if not spec.patch_pinned:
        kubelet = "kubelet"
        resolve = ""
    else:
        kubelet = 'kubelet="$version"'
        resolve = f"""\
version=$(apt-cache madison kubelet | awk '$3 ~ /^{spec.kubernetes_version.replace(".", "[.]")}-/ && !v {{v = $3}} END {{print v}}')
[ -n "$version" ] || {{ echo "kubelet {spec.kubernetes_version} is not in the package source" >&2; exit 1; }}
"""
    return f"""\
{resolve}{APT_INSTALL} {kubelet} {packages}
apt-mark hold kubelet cri-tools kubernetes-cni containerd
kubelet --version
"""


def _install_kube_proxy(spec: BootstrapSpec) -> str:
    source = spec.package_source
    if source.type == "offline":
        fetch = f"""\
cp {shlex.quote(source.directory)}/kube-proxy "$tmp/kube-proxy"
sum=$(cat {shlex.quote(source.directory)}/kube-proxy.sha256)
"""
    else:
        base = source.kube_proxy_base(spec.minor)
        url = f"{base}/v$version/bin/linux/$(dpkg --print-architecture)/kube-proxy"
        fetch = f"""\
curl -fsSL --retry 5 -o "$tmp/kube-proxy" "{url}"
sum=$(curl -fsSL --retry 5 "{url}.sha256")
"""
    return f"""\
# the same version as the kubelet the packages installed
version=$(dpkg-query -W -f='${{Version}}' kubelet); version=${{version%%-*}}
tmp=$(mktemp -d)
{fetch}echo "${{sum%% *}}  $tmp/kube-proxy" | sha256sum -c -
install -m 0755 "$tmp/kube-proxy" {KUBE_PROXY_BIN}
rm -rf "$tmp"
actual=$({KUBE_PROXY_BIN} --version)
[ "$actual" = "Kubernetes v$version" ] || {{ echo "kube-proxy is $actual, the kubelet v$version" >&2; exit 1; }}
"""


def steps(spec: BootstrapSpec) -> tuple[Step, ...]:
    """Every step for `spec`, in `STEPS` order."""
    containerd = f"{APT_INSTALL} containerd\ncontainerd --version\n"
    out = (
        Step(
            STEP_INSTANCE_METADATA,
            "ask the instance metadata service for the node's name and providerID",
            f"python3 {BOOTSTRAP_SCRIPT_PATH} metadata\n",
        ),
        Step(STEP_KERNEL_MODULES, "load overlay and br_netfilter", _os_check(spec) + _KERNEL_MODULES),
        Step(STEP_SYSCTL, "bridge netfilter and IP forwarding", _SYSCTL),
        Step(STEP_DISABLE_SWAP, "turn swap off for good", _DISABLE_SWAP),
        Step(
            STEP_PACKAGE_SOURCE,
            f"the Kubernetes {spec.minor} package source ({spec.package_source.type})",
            _package_source(spec),
        ),
        Step(STEP_INSTALL_CONTAINERD, "install containerd", containerd),
        Step(
            STEP_CONFIGURE_CONTAINERD,
            "systemd cgroups, the CRI plugin and the pause image",
            _CONFIGURE_CONTAINERD,
        ),
        Step(
            STEP_INSTALL_KUBELET,
            f"install kubelet {spec.kubernetes_version}, conntrack, socat, iptables",
            _install_kubelet(spec),
        ),
        Step(STEP_INSTALL_KUBE_PROXY, "install kube-proxy, its checksum verified", _install_kube_proxy(spec)),
        Step(STEP_START_KUBELET, "start the kubelet and wait for its client certificate", _START_KUBELET),
        Step(STEP_START_KUBE_PROXY, "start kube-proxy", _START_KUBE_PROXY),
    )
    return out
