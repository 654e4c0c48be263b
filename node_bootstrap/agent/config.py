"""What a node agent process is told: its nodes, their shape, and how often it reports.

Parsing of the kubelet-style flag values (durations, `k=v` labels, `key=value:Effect` taints)
lives here too, so the CLI and in-process callers share one set of rules.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from node_bootstrap.agent.quantity import parse_quantity

__all__ = [
    "DEFAULT_CAPACITY",
    "TAINT_EFFECTS",
    "AgentConfig",
    "node_ips",
    "node_names",
    "parse_duration",
    "parse_labels",
    "parse_taints",
]

DEFAULT_CAPACITY: Mapping[str, str] = MappingProxyType(
    {"cpu": "4", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
)
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# The well-known labels a kubelet sets itself; --node-labels may not override them.
LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_OS = "kubernetes.io/os"
LABEL_ARCH = "kubernetes.io/arch"
LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"


def _frozen(mapping: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class AgentConfig:
    """One agent process: `node_names` are the nodes it plays (one, or many for scale work)."""

    node_names: tuple[str, ...]
    kubeconfig: Path | None = None
    # InternalIP of the first node; node i advertises the i-th address after it.
    node_ip: str = "127.0.0.1"
    bind_address: str = "0.0.0.0"
    port: int = 10250
    capacity: Mapping[str, str] = field(default_factory=lambda: DEFAULT_CAPACITY)
    labels: Mapping[str, str] = field(default_factory=_frozen)
    taints: tuple[Mapping[str, str], ...] = ()
    # May contain {name} and {index}, so one template serves many nodes.
    provider_id: str = ""
    instance_type: str = ""
    zone: str = ""
    region: str = ""
    # "external": the node registers with the uninitialized taint the CCM removes, as upstream.
    cloud_provider: str = ""
    node_status_update_frequency: float = 10.0
    node_status_report_frequency: float = 60.0
    node_lease_duration_seconds: int = 40
    data_dir: Path | None = None
    client_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    # How long a pod waits for the node's spec.podCIDR before the agent's fallback range is used.
    pod_cidr_wait: float = 5.0
    # Node i takes the i-th /24 of this range when it has no podCIDR.
    fallback_pod_cidr: str = "100.64.0.0/10"
    container_restart_backoff: float = 10.0
    container_restart_backoff_max: float = 300.0
    log_lines_per_container: int = 1000
    # TLS bootstrap (instead of `kubeconfig`): a bootstrap kubeconfig, or a server and token
    # with the CA pinned by its public-key hash. Certificates live under `cert_dir`.
    bootstrap_kubeconfig: Path | None = None
    bootstrap_server: str = ""
    bootstrap_token: str = ""
    discovery_ca_cert_hashes: tuple[str, ...] = ()
    discovery_timeout: float = 300.0
    cert_dir: Path | None = None
    rotate_certificates: bool = True
    # spec.expirationSeconds of the node's CSRs (None: the signer's default duration).
    certificate_expiration_seconds: int | None = None
    bootstrap_timeout: float = 300.0

    def __post_init__(self) -> None:
        if not self.node_names:
            raise ValueError("at least one node name is required")
        if len(set(self.node_names)) != len(self.node_names):
            raise ValueError("node names must be distinct")
        for key, value in self.capacity.items():
            try:
                parse_quantity(value)
            except ValueError as exc:
                raise ValueError(f"capacity {key}: {exc}") from exc
        node_ips(self.node_ip, len(self.node_names))
        network = ipaddress.ip_network(self.fallback_pod_cidr)
        if network.prefixlen > 24 and network.version == 4:
            raise ValueError("fallback pod CIDR must be /24 or larger")
        if self.node_lease_duration_seconds <= 0:
            raise ValueError("node lease duration must be positive")
        if self.bootstraps:
            if self.cert_dir is None:
                raise ValueError("TLS bootstrap needs --cert-dir (or --data-dir) to keep the certificates in")
            if self.bootstrap_kubeconfig is None and not (
                self.bootstrap_token and self.discovery_ca_cert_hashes
            ):
                raise ValueError("--server needs --token and --discovery-token-ca-cert-hash")
        if self.node_status_update_frequency <= 0 or self.node_status_report_frequency <= 0:
            raise ValueError("node status frequencies must be positive")

    @property
    def bootstraps(self) -> bool:
        """True when the nodes get their client certificates by TLS bootstrap."""
        return self.bootstrap_kubeconfig is not None or bool(self.bootstrap_server)

    @property
    def lease_renew_interval(self) -> float:
        """Upstream renews at a quarter of the lease duration (10 s for 40 s)."""
        return self.node_lease_duration_seconds / 4


def node_names(*, count: int = 1, prefix: str = "", name: str = "") -> tuple[str, ...]:
    """`name` alone for one node; `prefix-0` .. `prefix-(count-1)` for many."""
    if count < 1:
        raise ValueError("--nodes must be at least 1")
    if name and (count > 1 or prefix):
        raise ValueError("--node-name names a single node; use --node-name-prefix with --nodes")
    if name:
        return (name,)
    if not prefix and count == 1:
        raise ValueError("a node name is required")
    return tuple(f"{prefix or 'sim-node'}-{i}" for i in range(count))


def node_ips(first: str, count: int) -> list[str]:
    """Consecutive InternalIPs starting at `first`."""
    start = ipaddress.ip_address(first)
    try:
        return [str(start + i) for i in range(count)]
    except ipaddress.AddressValueError as exc:
        raise ValueError(f"{count} node addresses do not fit after {first}") from exc


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> float:
    """A Go duration ("10s", "1m30s", "500ms") or plain seconds, as seconds."""
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {value!r}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text:
        raise ValueError("empty duration")
    return total


_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise ValueError(f"invalid label key {key!r}: bad prefix")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        raise ValueError(f"invalid label key {key!r}")


def _check_value(key: str, value: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValueError(f"invalid label value {value!r} for {key!r}")


def parse_labels(text: str) -> dict[str, str]:
    """`k=v,k2=v2` (kubelet --node-labels)."""
    labels: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"invalid label {item!r}: expected key=value")
        _check_key(key)
        _check_value(key, value)
        labels[key] = value
    return labels


def parse_taints(text: str) -> list[dict[str, str]]:
    """`key=value:Effect` or `key:Effect`, comma-separated (kubelet --register-with-taints)."""
    taints: list[dict[str, str]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        spec, sep, effect = item.rpartition(":")
        if not sep or effect not in TAINT_EFFECTS:
            raise ValueError(
                f"invalid taint {item!r}: expected key=value:Effect, Effect one of {TAINT_EFFECTS}"
            )
        key, _, value = spec.partition("=")
        _check_key(key)
        _check_value(key, value)
        taint: dict[str, Any] = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        taints.append(taint)
    return taints
