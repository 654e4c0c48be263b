"""The contract between the rendered user-data and whatever boots from it.

cloud-init writes these files (`write_files`) and then runs `/usr/local/sbin/pinnace-bootstrap`,
which executes the steps listed in `/etc/pinnace/bootstrap.json` in order and reports each one to
the Machine's status. The simulated node agent reads the same files and plays the same steps, so
everything but the package installs is exercised by every test.

Pure data: no IO, no imports from controlplane.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "BOOTSTRAP_CONFIG_PATH",
    "BOOTSTRAP_KUBECONFIG_PATH",
    "BOOTSTRAP_SCRIPT_PATH",
    "CA_PATH",
    "KUBELET_CONFIG_PATH",
    "KUBELET_EXTRA_ARGS_PATH",
    "KUBE_PROXY_CONFIG_PATH",
    "SUCCESS_MARKER_PATH",
    "JoinConfig",
    "JoinConfigError",
    "MachineRef",
    "Step",
]

BOOTSTRAP_CONFIG_PATH = "/etc/pinnace/bootstrap.json"
BOOTSTRAP_SCRIPT_PATH = "/usr/local/sbin/pinnace-bootstrap"
BOOTSTRAP_KUBECONFIG_PATH = "/etc/kubernetes/bootstrap-kubelet.conf"
CA_PATH = "/etc/kubernetes/pki/ca.crt"
KUBELET_CONFIG_PATH = "/var/lib/kubelet/config.yaml"
# KUBELET_EXTRA_ARGS=... read by the kubelet package's systemd drop-in (kubeadm's convention);
# the boot script appends --provider-id and --hostname-override once it knows the instance.
KUBELET_EXTRA_ARGS_PATH = "/etc/default/kubelet"
KUBE_PROXY_CONFIG_PATH = "/var/lib/kube-proxy/config.conf"
SUCCESS_MARKER_PATH = "/var/lib/pinnace/bootstrap-complete"

API_VERSION = "bootstrap.pinnace.dev/v1alpha1"
KIND = "BootstrapConfig"


class JoinConfigError(ValueError):
    """The user-data is not one Pinnace rendered (or is damaged); the message says what is wrong."""


@dataclass(frozen=True)
class MachineRef:
    """The Machine (cluster-scoped, group infra.pinnace.dev) whose status receives the step reports."""

    name: str
    uid: str = ""


@dataclass(frozen=True)
class Step:
    """One bootstrap step: `script` runs under `bash -euo pipefail`; its output is the step's log."""

    name: str
    description: str
    script: str


@dataclass(frozen=True)
class JoinConfig:
    """`/etc/pinnace/bootstrap.json`.

    `provider_id_template` has `{zone}`, `{region}` and `{instance_id}` filled at boot from the
    instance metadata service named by `metadata` ("aws" IMDSv2, "gce", "openstack", "local");
    the node is named after its instance id (DESIGN: node identity is the instance id).
    `ca_cert_hashes` pin the CA in the bootstrap kubeconfig (`sha256:<hex>` of its SPKI).
    """

    server: str
    ca_cert_hashes: tuple[str, ...]
    metadata: str
    provider_id_template: str
    kubernetes_version: str
    cluster_cidr: str
    steps: tuple[Step, ...]
    machine: MachineRef | None = None
    node_labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # {"key", "value", "effect"} as in a Node's spec.taints (the uninitialized taint included).
    node_taints: tuple[Mapping[str, str], ...] = ()

    def provider_id(self, *, zone: str, region: str, instance_id: str) -> str:
        return self.provider_id_template.format(zone=zone, region=region, instance_id=instance_id)

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "server": self.server,
            "caCertHashes": list(self.ca_cert_hashes),
            "metadata": self.metadata,
            "providerIDTemplate": self.provider_id_template,
            "kubernetesVersion": self.kubernetes_version,
            "clusterCIDR": self.cluster_cidr,
            "nodeLabels": dict(sorted(self.node_labels.items())),
            "nodeTaints": [dict(t) for t in self.node_taints],
            "steps": [{"name": s.name, "description": s.description, "script": s.script} for s in self.steps],
        }
        if self.machine is not None:
            doc["machine"] = {"name": self.machine.name, "uid": self.machine.uid}
        return json.dumps(doc, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> JoinConfig:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise JoinConfigError(f"{BOOTSTRAP_CONFIG_PATH}: not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
            raise JoinConfigError(f"{BOOTSTRAP_CONFIG_PATH}: not a {API_VERSION} {KIND}")
        try:
            machine = doc.get("machine")
            return cls(
                server=str(doc["server"]),
                ca_cert_hashes=tuple(str(h) for h in doc["caCertHashes"]),
                metadata=str(doc["metadata"]),
                provider_id_template=str(doc["providerIDTemplate"]),
                kubernetes_version=str(doc["kubernetesVersion"]),
                cluster_cidr=str(doc.get("clusterCIDR", "")),
                steps=tuple(_step(s) for s in doc["steps"]),
                machine=MachineRef(str(machine["name"]), str(machine.get("uid", ""))) if machine else None,
                node_labels=MappingProxyType(
                    {str(k): str(v) for k, v in (doc.get("nodeLabels") or {}).items()}
                ),
                node_taints=tuple(_taint(t) for t in doc.get("nodeTaints") or ()),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise JoinConfigError(f"{BOOTSTRAP_CONFIG_PATH}: missing or malformed field {exc}") from exc


def _step(doc: Mapping[str, Any]) -> Step:
    return Step(name=str(doc["name"]), description=str(doc.get("description", "")), script=str(doc["script"]))


def _taint(doc: Mapping[str, Any]) -> Mapping[str, str]:
    taint = {"key": str(doc["key"]), "effect": str(doc["effect"])}
    if doc.get("value"):
        taint["value"] = str(doc["value"])
    return MappingProxyType(taint)


def step_names(config: JoinConfig) -> Sequence[str]:
    return [s.name for s in config.steps]
