"""The bootstrap spec of one Machine: the pool's choices plus how to reach and trust the API server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ccm.provisioning import api
from ccm.provisioning.poolspec import PoolSpec
from ccm.provisioning.settings import ProvisionerSettings
from node_bootstrap.cloudinit.joinconfig import MachineRef
from node_bootstrap.cloudinit.spec import BootstrapSpec, PackageSource, ca_cert_hashes

__all__ = ["bootstrap_spec", "provider_id_template"]


def provider_id_template(provider: str) -> str:
    """`<provider>:///{zone}/{instance_id}`: upstream's AWS form, which the local cloud shares."""
    return f"{provider}:///{{zone}}/{{instance_id}}"


def _package_source(source: Mapping[str, str]) -> PackageSource:
    kind = source.get("type") or "upstream"
    if kind == "upstream":
        return PackageSource()
    return PackageSource(
        type="mirror" if kind == "mirror" else "offline",
        url=source.get("url", ""),
        key_url=source.get("keyURL", ""),
        key_fingerprint=source.get("keyFingerprint", ""),
    )


def bootstrap_spec(
    settings: ProvisionerSettings, pool: PoolSpec, machine: Mapping[str, Any], token: str
) -> BootstrapSpec:
    meta = machine.get("metadata") or {}
    spec = machine.get("spec") or {}
    name = str(meta.get("name", ""))
    provider = settings.provider.name
    labels = {**pool.labels, api.LABEL_NODE_POOL: pool.name, api.LABEL_MACHINE: name}
    extra: dict[str, Any] = {}
    if settings.cluster_dns:
        extra["cluster_dns"] = settings.cluster_dns
    return BootstrapSpec(
        os=str(spec.get("os") or pool.os),
        kubernetes_version=str(spec.get("kubernetesVersion") or pool.kubernetes_version),
        server=settings.server_url,
        ca_pem=settings.ca_pem,
        token=token,
        metadata=provider,
        ca_cert_hashes=ca_cert_hashes(settings.ca_pem),
        provider_id_template=provider_id_template(provider),
        cluster_cidr=settings.cluster_cidr,
        machine=MachineRef(name=name, uid=str(meta.get("uid", ""))),
        node_labels=labels,
        node_taints=tuple(pool.taints),
        package_source=_package_source(pool.package_source),
        **extra,
    )
