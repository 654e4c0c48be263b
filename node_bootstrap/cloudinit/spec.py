"""What a node's user-data is rendered from: `BootstrapSpec` and its `PackageSource`, validated.

Every check happens when a spec is built, so `render` never meets a value it cannot write; the
messages name the field and say what was expected. Pure: no IO, no imports from controlplane.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node_bootstrap.cloudinit.joinconfig import MachineRef

__all__ = [
    "DEFAULT_PAUSE_IMAGE",
    "KUBERNETES_KEY_FINGERPRINT",
    "METADATA_SERVICES",
    "SUPPORTED_OS",
    "UNINITIALIZED_TAINT",
    "BootstrapSpec",
    "PackageSource",
    "ca_cert_hashes",
    "default_provider_id_template",
    "parse_taint",
]

SUPPORTED_OS = ("ubuntu-22.04", "ubuntu-24.04", "debian-12")
METADATA_SERVICES = ("aws", "gce", "openstack", "local")
DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
KUBE_PROXY_MODES = ("iptables", "ipvs", "nftables")

# The key that signs pkgs.k8s.io's repositories ("isv:kubernetes OBS Project"), as `gpg` prints it
# for https://pkgs.k8s.io/core:/stable:/v1.3x/deb/Release.key: see kubernetes/kubernetes#128609
# and kubernetes/release#3818 (the key's expiry was extended in Nov 2024, its fingerprint kept).
KUBERNETES_KEY_FINGERPRINT = "DE15B14486CD377B9E876E1A234654DA9A296436"
UPSTREAM_APT_URL = "https://pkgs.k8s.io/core:/stable:/v{minor}/deb/"
UPSTREAM_BINARY_URL = "https://dl.k8s.io/release"

# cloud-provider's taint: the CCM removes it once it has initialized the Node.
UNINITIALIZED_TAINT: Mapping[str, str] = MappingProxyType(
    {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}
)

# KubeletConfiguration.containerRuntimeEndpoint exists from 1.27 on.
MIN_MINOR = 27

_TOKEN = re.compile(r"\A[a-z0-9]{6}\.[a-z0-9]{16}\Z")
_HASH = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
_VERSION = re.compile(r"\Av?1\.(\d+)(?:\.(\d+))?\Z")
_FINGERPRINT = re.compile(r"\A[0-9A-F]{40}\Z")
_NAME = re.compile(r"\A(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)\Z")
_DNS_SUBDOMAIN = re.compile(r"\A[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\Z")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")
_TEMPLATE_FIELDS = frozenset({"zone", "region", "instance_id"})
_IMAGE = re.compile(r"\A[a-z0-9][-a-z0-9._:/@]*\Z")

# What a kubelet may put in --node-labels inside the kubernetes.io / k8s.io namespaces
# (k8s.io/kubelet/pkg/apis/well_known_labels.go: kubeletLabels and kubeletLabelNamespaces).
_KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    }
)
_KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")

_PROVIDER_ID_TEMPLATES = {
    "aws": "aws:///{zone}/{instance_id}",
    "local": "local:///{zone}/{instance_id}",
    "openstack": "openstack:///{instance_id}",
}


def default_provider_id_template(metadata: str) -> str:
    """The providerID format of `metadata`'s cloud; GCE's needs the project, so it has none."""
    try:
        return _PROVIDER_ID_TEMPLATES[metadata]
    except KeyError:
        raise ValueError(
            f"provider_id_template: no default for metadata {metadata!r}; "
            "give one, e.g. gce://<project>/{zone}/{instance_id}"
        ) from None


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


@dataclass(frozen=True, kw_only=True)
class PackageSource:
    """Where kubelet, containerd & co and the kube-proxy binary come from.

    - `upstream`: pkgs.k8s.io for the minor version (its key pinned by fingerprint), dl.k8s.io
      for kube-proxy; no other field may be set.
    - `mirror`: a flat apt repository laid out like pkgs.k8s.io (`deb <url> /`) signed by the key
      at `key_url` (default `<url>/Release.key`) whose fingerprint must be `key_fingerprint`;
      kube-proxy from `binary_url` laid out like dl.k8s.io (default dl.k8s.io). `{minor}` in a
      URL is replaced by the Kubernetes minor version (`1.33`).
    - `offline`: `url` is a directory on the image (or `file:///dir`) holding the .deb files with
      a `Packages` index (`dpkg-scanpackages . > Packages`), and `kube-proxy` with `kube-proxy.sha256`.
    """

    type: Literal["upstream", "mirror", "offline"] = "upstream"
    url: str = ""
    key_url: str = ""
    key_fingerprint: str = ""
    binary_url: str = ""

    def __post_init__(self) -> None:
        kind = self.type
        if kind not in {"upstream", "mirror", "offline"}:
            raise ValueError(f"package_source.type: {kind!r} is not one of upstream, mirror, offline")
        if kind == "upstream":
            if self.url or self.key_url or self.key_fingerprint or self.binary_url:
                raise ValueError("package_source: upstream takes no url, key or binary_url (use type mirror)")
            return
        if kind == "offline":
            if self.key_url or self.key_fingerprint or self.binary_url:
                raise ValueError("package_source: offline takes only url (a local directory)")
            path = self.url.removeprefix("file://")
            if not path.startswith("/") or any(c in path for c in "'\"\\ $`\n"):
                raise ValueError(
                    f"package_source.url: offline needs an absolute directory or file:///dir, not {self.url!r}"
                )
            return
        for name in ("url", "key_url", "binary_url"):
            value = getattr(self, name)
            if value or name == "url":
                _check_http_url(f"package_source.{name}", value)
        fingerprint = self.key_fingerprint.replace(" ", "").upper()
        if not _FINGERPRINT.match(fingerprint):
            raise ValueError(
                f"package_source.key_fingerprint: {self.key_fingerprint!r} is not a 40-hex-digit OpenPGP fingerprint"
            )
        object.__setattr__(self, "key_fingerprint", fingerprint)

    def apt_url(self, minor: str) -> str:
        if self.type == "upstream":
            return UPSTREAM_APT_URL.format(minor=minor)
        if self.type == "offline":
            return "file:" + self.directory
        return self.url.replace("{minor}", minor)

    def apt_key_url(self, minor: str) -> str:
        if self.type == "upstream":
            return self.apt_url(minor) + "Release.key"
        if self.key_url:
            return self.key_url.replace("{minor}", minor)
        return self.apt_url(minor).rstrip("/") + "/Release.key"

    def fingerprint(self) -> str:
        return KUBERNETES_KEY_FINGERPRINT if self.type == "upstream" else self.key_fingerprint

    def kube_proxy_base(self, minor: str) -> str:
        """dl.k8s.io's layout: `<base>/v<version>/bin/linux/<arch>/kube-proxy` (+ `.sha256`)."""
        if self.type == "mirror" and self.binary_url:
            return self.binary_url.replace("{minor}", minor).rstrip("/")
        return UPSTREAM_BINARY_URL

    @property
    def directory(self) -> str:
        return self.url.removeprefix("file://").rstrip("/") or "/"


def _check_http_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname or any(c in value for c in "'\"\\ $`\n"):
        raise ValueError(f"{name}: {value!r} is not an http(s) URL")


def _check_qualified_name(what: str, key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if not key or len(name) > 63 or not _NAME.match(name):
        raise ValueError(
            f"{what} {key!r}: name part must be 63 characters or less, alphanumeric, '-', '_' or '.', "
            "starting and ending with an alphanumeric character"
        )
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise ValueError(f"{what} {key!r}: prefix must be a DNS subdomain")


def _check_label_value(what: str, value: str) -> None:
    if value and (len(value) > 63 or not _NAME.match(value)):
        raise ValueError(
            f"{what} {value!r}: must be empty or 63 characters or less, alphanumeric, '-', '_' or '.', "
            "starting and ending with an alphanumeric character"
        )


def _is_kubernetes_label(key: str) -> bool:
    namespace = key.partition("/")[0] if "/" in key else ""
    return any(namespace == d or namespace.endswith("." + d) for d in ("kubernetes.io", "k8s.io"))


def _is_kubelet_label(key: str) -> bool:
    if key in _KUBELET_LABELS:
        return True
    namespace = key.partition("/")[0] if "/" in key else ""
    return any(namespace == n or namespace.endswith("." + n) for n in _KUBELET_LABEL_NAMESPACES)


def parse_taint(text: str) -> Mapping[str, str]:
    """`key[=value]:Effect` (kubectl taint's and --register-with-taints' syntax)."""
    head, colon, effect = text.rpartition(":")
    if not colon:
        raise ValueError(f"taint {text!r}: expected key[=value]:Effect")
    key, _, value = head.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return MappingProxyType(taint)


def _check_taint(taint: Mapping[str, str]) -> Mapping[str, str]:
    unknown = set(taint) - {"key", "value", "effect"}
    if unknown:
        raise ValueError(f"node_taints: unknown field(s) {sorted(unknown)} in {dict(taint)}")
    key, value, effect = str(taint.get("key", "")), str(taint.get("value", "")), str(taint.get("effect", ""))
    _check_qualified_name("node_taints: key", key)
    _check_label_value("node_taints: value", value)
    if effect not in _TAINT_EFFECTS:
        raise ValueError(f"node_taints: effect {effect!r} is not one of {', '.join(_TAINT_EFFECTS)}")
    out = {"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect}
    return MappingProxyType(out)


def _spki_hashes(ca_pem: bytes) -> list[str]:
    try:
        certs = x509.load_pem_x509_certificates(ca_pem)
    except ValueError as exc:
        raise ValueError(f"ca_pem: not PEM certificates: {exc}") from exc
    out = []
    for cert in certs:
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        out.append("sha256:" + hashlib.sha256(spki).hexdigest())
    return out


def ca_cert_hashes(ca_pem: bytes) -> tuple[str, ...]:
    """kubeadm's `--discovery-token-ca-cert-hash` values: `sha256:<hex>` of each certificate's SPKI."""
    return tuple(_spki_hashes(ca_pem))


@dataclass(frozen=True, kw_only=True)
class BootstrapSpec:
    """Everything one node's user-data depends on (its bootstrap token included)."""

    os: str
    kubernetes_version: str
    server: str
    ca_pem: bytes
    token: str
    metadata: str
    ca_cert_hashes: tuple[str, ...] = ()
    provider_id_template: str = ""
    cluster_cidr: str = "10.244.0.0/16"
    cluster_dns: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"
    machine: MachineRef | None = None
    node_labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # {"key", "value"?, "effect"}; the uninitialized taint is always added.
    node_taints: tuple[Mapping[str, str], ...] = ()
    package_source: PackageSource = field(default_factory=PackageSource)
    pause_image: str = DEFAULT_PAUSE_IMAGE
    kube_proxy_mode: str = "iptables"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.os not in SUPPORTED_OS:
            raise ValueError(f"os: {self.os!r} is not supported (one of {', '.join(SUPPORTED_OS)})")
        match = _VERSION.match(self.kubernetes_version)
        if match is None:
            raise ValueError(
                f"kubernetes_version: {self.kubernetes_version!r} is not a minor (1.33) or patch (1.33.2) version"
            )
        if int(match.group(1)) < MIN_MINOR:
            raise ValueError(f"kubernetes_version: {self.kubernetes_version} is older than 1.{MIN_MINOR}")
        set_(self, "kubernetes_version", self.kubernetes_version.removeprefix("v"))
        parts = urlsplit(self.server)
        unsafe = any(c.isspace() or c in "'\"\\`$" for c in self.server)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or unsafe:
            raise ValueError(f"server: {self.server!r} is not an https://host[:port] URL")
        if not _TOKEN.match(self.token):
            raise ValueError(
                "token: not a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16}); `pinnace token create` makes one"
            )
        if self.metadata not in METADATA_SERVICES:
            raise ValueError(f"metadata: {self.metadata!r} is not one of {', '.join(METADATA_SERVICES)}")
        self._check_ca()
        self._check_template()
        self._check_network()
        labels = {str(k): str(v) for k, v in self.node_labels.items()}
        for key, value in labels.items():
            _check_qualified_name("node_labels: key", key)
            _check_label_value(f"node_labels[{key}]: value", value)
        unknown = sorted(k for k in labels if _is_kubernetes_label(k) and not _is_kubelet_label(k))
        if unknown:
            raise ValueError(
                f"node_labels: unknown 'kubernetes.io' or 'k8s.io' labels {unknown}: the kubelet may set only "
                f"{', '.join(sorted(_KUBELET_LABELS))} and labels under {', '.join(_KUBELET_LABEL_NAMESPACES)}"
            )
        set_(self, "node_labels", MappingProxyType(dict(sorted(labels.items()))))
        taints = [_check_taint(t) for t in self.node_taints]
        if not any(t["key"] == UNINITIALIZED_TAINT["key"] for t in taints):
            taints.append(UNINITIALIZED_TAINT)
        seen = set()
        for t in taints:
            if (t["key"], t["effect"]) in seen:
                raise ValueError(f"node_taints: {t['key']}:{t['effect']} given twice")
            seen.add((t["key"], t["effect"]))
        set_(self, "node_taints", tuple(taints))
        if self.machine is not None and (
            len(self.machine.name) > 253 or not _DNS_SUBDOMAIN.match(self.machine.name)
        ):
            raise ValueError(f"machine: {self.machine.name!r} is not a valid object name (a DNS subdomain)")
        if len(self.pause_image) > 255 or not _IMAGE.match(self.pause_image):
            raise ValueError(f"pause_image: {self.pause_image!r} is not an image reference")
        if self.kube_proxy_mode not in KUBE_PROXY_MODES:
            raise ValueError(
                f"kube_proxy_mode: {self.kube_proxy_mode!r} is not one of {', '.join(KUBE_PROXY_MODES)}"
            )

    def _check_ca(self) -> None:
        actual = _spki_hashes(self.ca_pem)
        if not actual:
            raise ValueError("ca_pem: no certificate")
        if not self.ca_cert_hashes:
            object.__setattr__(self, "ca_cert_hashes", tuple(actual))
            return
        hashes = tuple(h.strip().lower() for h in self.ca_cert_hashes)
        for h in hashes:
            if not _HASH.match(h):
                raise ValueError(f'ca_cert_hashes: invalid hash "{h}", expected "sha256:" and 64 hex digits')
        if not set(hashes) & set(actual):
            raise ValueError("ca_cert_hashes: none of them is the hash of the CA in ca_pem")
        object.__setattr__(self, "ca_cert_hashes", hashes)

    def _check_template(self) -> None:
        template = self.provider_id_template or default_provider_id_template(self.metadata)
        fields = set(_TEMPLATE_FIELD.findall(template))
        if (
            "instance_id" not in fields
            or not fields <= _TEMPLATE_FIELDS
            or any(c in template for c in " '\"\\\n")
        ):
            raise ValueError(
                f"provider_id_template: {template!r} must contain {{instance_id}} and only "
                "{zone}, {region} and {instance_id} as fields"
            )
        object.__setattr__(self, "provider_id_template", template)

    def _check_network(self) -> None:
        try:
            cidrs = [ipaddress.ip_network(c.strip()) for c in self.cluster_cidr.split(",")]
            dns = ipaddress.ip_address(self.cluster_dns)
        except ValueError as exc:
            raise ValueError(f"cluster_cidr / cluster_dns: {exc}") from exc
        if len(cidrs) > 2:
            raise ValueError("cluster_cidr: at most one IPv4 and one IPv6 CIDR")
        object.__setattr__(self, "cluster_cidr", ",".join(str(c) for c in cidrs))
        object.__setattr__(self, "cluster_dns", str(dns))
        if not _DNS_SUBDOMAIN.match(self.cluster_domain):
            raise ValueError(f"cluster_domain: {self.cluster_domain!r} is not a DNS domain")

    @property
    def minor(self) -> str:
        return _minor(self.kubernetes_version)

    @property
    def patch_pinned(self) -> bool:
        return self.kubernetes_version.count(".") == 2

    @property
    def taint_list(self) -> list[dict[str, str]]:
        return [dict(t) for t in self.node_taints]
