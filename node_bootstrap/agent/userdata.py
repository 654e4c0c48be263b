"""From an instance's user-data to the node agent's configuration, as a real instance gets there.

A kubelet started from Pinnace's cloud-init knows only what the user-data wrote (the kubelet
configuration, `KUBELET_EXTRA_ARGS`, the bootstrap kubeconfig, `/etc/pinnace/bootstrap.json`)
and what the instance metadata service says (its id, zone, region, address, type). This module
turns exactly that into an `AgentConfig`: the node is named after the instance id, its
providerID is the join config's template filled from the metadata, its labels and taints are
the kubelet's, and it bootstraps with the token in the bootstrap kubeconfig - but only after the
CA in that kubeconfig matched one of the pinned hashes, as `kubeadm join` insists.

Pure: no IO; the caller writes `bootstrap_kubeconfig_yaml` where `AgentConfig` says.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from controlplane.api.node_labels import (
    KUBELET_LABEL_NAMESPACES,
    KUBELET_LABELS,
    is_kubelet_label,
    is_kubernetes_label,
)
from node_bootstrap.agent.bootstrap import parse_token
from node_bootstrap.agent.config import (
    DEFAULT_CAPACITY,
    TAINT_EFFECTS,
    AgentConfig,
    parse_duration,
    parse_labels,
    parse_taints,
)
from node_bootstrap.agent.discovery import parse_pins, spki_hash
from node_bootstrap.cloudinit.joinconfig import (
    BOOTSTRAP_CONFIG_PATH,
    BOOTSTRAP_KUBECONFIG_PATH,
    KUBELET_CONFIG_PATH,
    KUBELET_EXTRA_ARGS_PATH,
)
from node_bootstrap.cloudinit.read import RenderedNode

__all__ = [
    "BOOTSTRAP_KUBECONFIG_NAME",
    "METADATA_KINDS",
    "CAPinError",
    "InstanceFacts",
    "UserDataError",
    "agent_config_for",
    "bootstrap_kubeconfig_yaml",
    "check_ca_pin",
    "cloud_provider",
    "instance_dir",
    "node_labels",
    "node_name",
    "node_taints",
    "provider_id",
]

# The instance metadata services a join config may name (see JoinConfig.metadata).
METADATA_KINDS = ("aws", "gce", "openstack", "local")
BOOTSTRAP_KUBECONFIG_NAME = "bootstrap-kubelet.conf"


class UserDataError(ValueError):
    """The user-data cannot start a node; the message says which file and what is wrong."""


class CAPinError(UserDataError):
    """The CA the user-data carries is not one the join config pins: the node refuses to join."""


@dataclass(frozen=True)
class InstanceFacts:
    """What the instance metadata service tells the instance about itself."""

    instance_id: str
    zone: str = ""
    region: str = ""
    private_ip: str = "127.0.0.1"
    instance_type: str = ""


def instance_dir(data_dir: Path, instance_id: str) -> Path:
    """Everything one simulated instance keeps (certificates, the bootstrap kubeconfig, markers)."""
    return data_dir / instance_id


def check_ca_pin(rendered: RenderedNode) -> str:
    """The pinned hash the bootstrap kubeconfig's CA matches; CAPinError when none does."""
    try:
        pins = parse_pins(rendered.join.ca_cert_hashes)
    except ValueError as exc:
        raise CAPinError(f"{BOOTSTRAP_CONFIG_PATH}: caCertHashes: {exc}") from exc
    if not pins:
        raise CAPinError(
            f"{BOOTSTRAP_CONFIG_PATH}: no caCertHashes; refusing to trust the CA in "
            f"{BOOTSTRAP_KUBECONFIG_PATH} without a pin"
        )
    try:
        certs = x509.load_pem_x509_certificates(rendered.bootstrap.ca_pem)
    except ValueError as exc:
        raise CAPinError(f"{BOOTSTRAP_KUBECONFIG_PATH}: the certificate authority is not PEM: {exc}") from exc
    found = [spki_hash(cert) for cert in certs]
    for digest in found:
        if digest in pins:
            return digest
    raise CAPinError(
        f"refusing to join: the CA in {BOOTSTRAP_KUBECONFIG_PATH} ({', '.join(found)}) matches none "
        f"of the pinned hashes in {BOOTSTRAP_CONFIG_PATH} ({', '.join(pins)})"
    )


def _flag_values(args: Sequence[str], name: str) -> list[str]:
    """Every value of `--name=value` or `--name value` (Go's flag syntax), in order."""
    values = []
    flag = f"--{name}"
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            values.append(arg[len(flag) + 1 :])
        elif arg == flag and i + 1 < len(args):
            values.append(args[i + 1])
    return values


def _check_kubelet_labels(labels: Mapping[str, str]) -> None:
    """As the kubelet's ValidateKubeletFlags: no self-assigned labels in Kubernetes' namespaces."""
    unknown = [key for key in labels if is_kubernetes_label(key) and not is_kubelet_label(key)]
    if unknown:
        raise UserDataError(
            f"failed to validate kubelet flags: unknown 'kubernetes.io' or 'k8s.io' labels specified with "
            f"--node-labels: [{' '.join(sorted(unknown))}]\n--node-labels in the 'kubernetes.io' namespace "
            f"must begin with an allowed prefix ({', '.join(KUBELET_LABEL_NAMESPACES)}) or be in the "
            f"specifically allowed set ({', '.join(sorted(KUBELET_LABELS))})"
        )


def node_labels(rendered: RenderedNode) -> dict[str, str]:
    """The join config's labels, then `--node-labels` (the kubelet's flag wins)."""
    labels = dict(rendered.join.node_labels)
    for value in _flag_values(rendered.kubelet_extra_args, "node-labels"):
        try:
            labels.update(parse_labels(value))
        except ValueError as exc:
            raise UserDataError(f"{KUBELET_EXTRA_ARGS_PATH}: --node-labels: {exc}") from exc
    _check_kubelet_labels(labels)
    return labels


def _taint(doc: Any, where: str) -> dict[str, str]:
    if not isinstance(doc, Mapping) or not doc.get("key") or doc.get("effect") not in TAINT_EFFECTS:
        raise UserDataError(f"{where}: invalid taint {doc!r}: needs a key and an effect of {TAINT_EFFECTS}")
    taint = {"key": str(doc["key"]), "effect": str(doc["effect"])}
    if doc.get("value"):
        taint["value"] = str(doc["value"])
    return taint


def node_taints(rendered: RenderedNode) -> tuple[dict[str, str], ...]:
    """registerWithTaints, then --register-with-taints, then the join config's; one per key and effect."""
    found: list[dict[str, str]] = []
    registered = rendered.kubelet_config.get("registerWithTaints") or []
    if not isinstance(registered, list):
        raise UserDataError(f"{KUBELET_CONFIG_PATH}: registerWithTaints is not a list")
    found += [_taint(t, f"{KUBELET_CONFIG_PATH}: registerWithTaints") for t in registered]
    for value in _flag_values(rendered.kubelet_extra_args, "register-with-taints"):
        try:
            found += parse_taints(value)
        except ValueError as exc:
            raise UserDataError(f"{KUBELET_EXTRA_ARGS_PATH}: --register-with-taints: {exc}") from exc
    found += [_taint(t, BOOTSTRAP_CONFIG_PATH) for t in rendered.join.node_taints]
    unique: dict[tuple[str, str], dict[str, str]] = {}
    for taint in found:
        unique.setdefault((taint["key"], taint["effect"]), taint)
    return tuple(unique.values())


def cloud_provider(rendered: RenderedNode) -> str:
    """ "external" or "" (the only values a current kubelet accepts for --cloud-provider)."""
    values = _flag_values(rendered.kubelet_extra_args, "cloud-provider")
    value = values[-1] if values else ""
    if value not in {"", "external"}:
        raise UserDataError(
            f"{KUBELET_EXTRA_ARGS_PATH}: --cloud-provider={value}: only 'external' is supported "
            "(the in-tree cloud providers were removed)"
        )
    return value


def node_name(rendered: RenderedNode, instance: InstanceFacts) -> str:
    """--hostname-override once the instance-metadata step wrote it; else what that step would
    write: the instance id, lower-cased as a Node name must be."""
    values = _flag_values(rendered.kubelet_extra_args, "hostname-override")
    return values[-1] if values and values[-1] else instance.instance_id.lower()


def provider_id(rendered: RenderedNode, instance: InstanceFacts) -> str:
    """--provider-id (or the kubelet configuration's providerID) once the instance-metadata step
    wrote it; else the join config's template filled from the instance metadata, as that step does."""
    values = _flag_values(rendered.kubelet_extra_args, "provider-id")
    if values and values[-1]:
        return values[-1]
    if rendered.kubelet_config.get("providerID"):
        return str(rendered.kubelet_config["providerID"])
    join = rendered.join
    if join.metadata not in METADATA_KINDS:
        raise UserDataError(
            f"{BOOTSTRAP_CONFIG_PATH}: unknown instance metadata service {join.metadata!r} "
            f"(known: {', '.join(METADATA_KINDS)})"
        )
    try:
        return join.provider_id(zone=instance.zone, region=instance.region, instance_id=instance.instance_id)
    except (KeyError, IndexError, ValueError) as exc:
        raise UserDataError(
            f"{BOOTSTRAP_CONFIG_PATH}: providerIDTemplate {join.provider_id_template!r} has an unknown "
            f"placeholder ({exc}); it may use {{zone}}, {{region}} and {{instance_id}}"
        ) from exc


def _kubelet_timing(config: Mapping[str, Any]) -> dict[str, Any]:
    """The KubeletConfiguration fields the agent honours."""
    out: dict[str, Any] = {}
    try:
        for field_name, key in (
            ("node_status_update_frequency", "nodeStatusUpdateFrequency"),
            ("node_status_report_frequency", "nodeStatusReportFrequency"),
        ):
            if config.get(key):
                out[field_name] = parse_duration(str(config[key]))
        if config.get("nodeLeaseDurationSeconds"):
            out["node_lease_duration_seconds"] = int(config["nodeLeaseDurationSeconds"])
    except ValueError as exc:
        raise UserDataError(f"{KUBELET_CONFIG_PATH}: {exc}") from exc
    return out


def bootstrap_kubeconfig_yaml(rendered: RenderedNode) -> str:
    """The bootstrap kubeconfig with its CA inline (the user-data may reference a file by path)."""
    boot = rendered.bootstrap
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "default-cluster",
                "cluster": {
                    "server": boot.server,
                    "certificate-authority-data": base64.b64encode(boot.ca_pem).decode(),
                },
            }
        ],
        "contexts": [
            {"name": "default-context", "context": {"cluster": "default-cluster", "user": "tls-bootstrap"}}
        ],
        "current-context": "default-context",
        "users": [{"name": "tls-bootstrap", "user": {"token": boot.token}}],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def agent_config_for(
    rendered: RenderedNode,
    instance: InstanceFacts,
    *,
    data_dir: Path,
    port: int = 0,
    bind_address: str = "127.0.0.1",
    overrides: Mapping[str, Any] | None = None,
) -> AgentConfig:
    """The node agent of `instance`, booted from `rendered`; UserDataError (CAPinError for a CA
    that is not pinned) when the user-data cannot make a node.

    `overrides` replace AgentConfig fields (shorter leases in tests, capacity); the bootstrap
    kubeconfig is expected at `instance_dir(...) / BOOTSTRAP_KUBECONFIG_NAME`."""
    if not instance.instance_id:
        raise UserDataError("the instance metadata gave no instance id")
    check_ca_pin(rendered)
    try:
        parse_token(rendered.bootstrap.token)
    except ValueError as exc:
        raise UserDataError(f"{BOOTSTRAP_KUBECONFIG_PATH}: {exc}") from exc
    home = instance_dir(data_dir, instance.instance_id)
    # AgentConfig formats {name} and {index} into the providerID; braces of the id itself stay.
    pid = provider_id(rendered, instance).replace("{", "{{").replace("}", "}}")
    fields: dict[str, Any] = {
        "node_names": (node_name(rendered, instance),),
        "node_ip": instance.private_ip or "127.0.0.1",
        "bind_address": bind_address,
        "port": port,
        "labels": node_labels(rendered),
        "taints": node_taints(rendered),
        "provider_id": pid,
        "instance_type": instance.instance_type,
        "zone": instance.zone,
        "region": instance.region,
        "cloud_provider": cloud_provider(rendered),
        "data_dir": home,
        "cert_dir": home / "pki",
        "bootstrap_kubeconfig": home / BOOTSTRAP_KUBECONFIG_NAME,
        **_kubelet_timing(rendered.kubelet_config),
    }
    max_pods = rendered.kubelet_config.get("maxPods")
    if max_pods:
        fields["capacity"] = {**DEFAULT_CAPACITY, "pods": str(int(max_pods))}
    try:
        config = AgentConfig(**fields)
        return dataclasses.replace(config, **dict(overrides or {}))
    except (TypeError, ValueError) as exc:
        raise UserDataError(f"the node agent cannot run this node: {exc}") from exc
