"""`pinnace bootstrap render --node-pool FILE`: a node's user-data, for those who provision with their own tools.

It renders what the NodePool operator gives each instance; the bootstrap token is yours to make
(`pinnace token create --ttl 30m` prints one) and is the only credential in the output.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from node_bootstrap.cloudinit.joinconfig import MachineRef
from node_bootstrap.cloudinit.render import EC2_USER_DATA_LIMIT, user_data
from node_bootstrap.cloudinit.spec import (
    METADATA_SERVICES,
    BootstrapSpec,
    PackageSource,
)

__all__ = ["LABEL_MACHINE", "LABEL_NODE_POOL", "add_parser", "run", "spec_from_node_pool"]

# ccm.provisioning.api's labels (node_bootstrap may not import ccm; a test keeps them equal).
NODE_POOL_API_VERSION = "infra.pinnace.dev/v1alpha1"
LABEL_NODE_POOL = "infra.pinnace.dev/node-pool"
LABEL_MACHINE = "infra.pinnace.dev/machine"
# A NodePool's provider -> the metadata service its instances have.
PROVIDER_METADATA = {"aws": "aws", "local": "local", "gce": "gce", "gcp": "gce", "openstack": "openstack"}


class RenderError(Exception):
    """Bad input; the message is for the user."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `bootstrap render` to the `pinnace` command line."""
    bootstrap: argparse.ArgumentParser = subparsers.add_parser(
        "bootstrap", help="node bootstrap: render the cloud-init user-data of a NodePool's nodes"
    )
    sub = bootstrap.add_subparsers(dest="bootstrap_command", required=True)
    p: argparse.ArgumentParser = sub.add_parser(
        "render",
        help="print the #cloud-config user-data a node of a NodePool boots from",
        description="Render the #cloud-config user-data that installs containerd, kubelet and kube-proxy "
        "and joins the node with a bootstrap token (make one with `pinnace token create`).",
    )
    p.add_argument(
        "--node-pool", required=True, help="a NodePool (infra.pinnace.dev/v1alpha1) YAML file, - for stdin"
    )
    p.add_argument("--server", required=True, help="the API server URL the node joins, https://host:port")
    p.add_argument("--ca-file", type=Path, required=True, help="the cluster CA certificate (PEM)")
    p.add_argument("--token", required=True, help="a bootstrap token <id>.<secret> (`pinnace token create`)")
    p.add_argument(
        "--discovery-token-ca-cert-hash",
        action="append",
        default=[],
        help="sha256:<hex> pin of the CA's public key (repeatable; default computed from --ca-file)",
    )
    p.add_argument("--machine", default="", help="the Machine whose status receives the step reports")
    p.add_argument(
        "--metadata",
        choices=METADATA_SERVICES,
        default=None,
        help="instance metadata service (default: the pool's provider)",
    )
    p.add_argument(
        "--provider-id-template", default="", help="e.g. aws:///{zone}/{instance_id} (default per metadata)"
    )
    p.add_argument("--cluster-cidr", default="10.244.0.0/16")
    p.add_argument("--cluster-dns", default="10.96.0.10")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument(
        "--gzip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"gzip the output (default: only when above EC2's {EC2_USER_DATA_LIMIT} bytes)",
    )
    p.add_argument("--output", "-o", default="-", help="write here (mode 0600) instead of stdout")
    return p


def _load_node_pool(path: str) -> Mapping[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        docs = [d for d in yaml.safe_load_all(text) if d]
    except OSError as exc:
        raise RenderError(f"--node-pool: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RenderError(f"--node-pool: not YAML: {exc}") from exc
    pools = [d for d in docs if isinstance(d, dict) and d.get("kind") == "NodePool"]
    if len(pools) != 1:
        raise RenderError(f"--node-pool: expected one NodePool, found {len(pools)}")
    pool = pools[0]
    if pool.get("apiVersion") != NODE_POOL_API_VERSION:
        raise RenderError(
            f"--node-pool: apiVersion {pool.get('apiVersion')!r} is not {NODE_POOL_API_VERSION}"
        )
    return pool


def _package_source(doc: Mapping[str, Any]) -> PackageSource:
    return PackageSource(
        type=doc.get("type", "upstream"),
        url=str(doc.get("url", "")),
        key_url=str(doc.get("keyURL", "")),
        key_fingerprint=str(doc.get("keyFingerprint", "")),
        binary_url=str(doc.get("binaryURL", "")),
    )


def spec_from_node_pool(
    pool: Mapping[str, Any],
    *,
    server: str,
    ca_pem: bytes,
    token: str,
    ca_cert_hashes: tuple[str, ...] = (),
    machine: str = "",
    metadata: str | None = None,
    provider_id_template: str = "",
    cluster_cidr: str = "10.244.0.0/16",
    cluster_dns: str = "10.96.0.10",
    cluster_domain: str = "cluster.local",
) -> BootstrapSpec:
    """The BootstrapSpec of a node of `pool` (a NodePool object); ValueError/RenderError when unusable."""
    spec = pool.get("spec") or {}
    name = str((pool.get("metadata") or {}).get("name", ""))
    for field in ("os", "kubernetesVersion"):
        if not spec.get(field):
            raise RenderError(f"--node-pool: spec.{field} is required")
    provider = str(spec.get("provider", ""))
    if metadata is None:
        if provider not in PROVIDER_METADATA:
            raise RenderError(
                f"--node-pool: no metadata service known for provider {provider!r}; give --metadata"
            )
        metadata = PROVIDER_METADATA[provider]
    labels = {str(k): str(v) for k, v in (spec.get("labels") or {}).items()}
    if name:
        labels[LABEL_NODE_POOL] = name
    if machine:
        labels[LABEL_MACHINE] = machine
    taints = tuple({str(k): str(v) for k, v in t.items()} for t in spec.get("taints") or ())
    bootstrap = spec.get("bootstrap") or {}
    return BootstrapSpec(
        os=str(spec["os"]),
        kubernetes_version=str(spec["kubernetesVersion"]),
        server=server,
        ca_pem=ca_pem,
        token=token,
        ca_cert_hashes=ca_cert_hashes,
        metadata=metadata,
        provider_id_template=provider_id_template,
        cluster_cidr=cluster_cidr,
        cluster_dns=cluster_dns,
        cluster_domain=cluster_domain,
        machine=MachineRef(machine) if machine else None,
        node_labels=labels,
        node_taints=taints,
        package_source=_package_source(bootstrap.get("packageSource") or {}),
    )


def _write(path: str, data: bytes) -> None:
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def run(args: argparse.Namespace) -> int:
    try:
        pool = _load_node_pool(args.node_pool)
        try:
            ca_pem = args.ca_file.read_bytes()
        except OSError as exc:
            raise RenderError(f"--ca-file: {exc}") from exc
        spec = spec_from_node_pool(
            pool,
            server=args.server,
            ca_pem=ca_pem,
            token=args.token,
            ca_cert_hashes=tuple(args.discovery_token_ca_cert_hash),
            machine=args.machine,
            metadata=args.metadata,
            provider_id_template=args.provider_id_template,
            cluster_cidr=args.cluster_cidr,
            cluster_dns=args.cluster_dns,
            cluster_domain=args.cluster_domain,
        )
        data = user_data(spec, compress=args.gzip)
        if args.gzip is False and len(data) > EC2_USER_DATA_LIMIT:
            print(
                f"pinnace bootstrap render: warning: {len(data)} bytes, above EC2's {EC2_USER_DATA_LIMIT}",
                file=sys.stderr,
            )
        _write(args.output, data)
    except (RenderError, ValueError) as exc:
        print(f"pinnace bootstrap render: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"pinnace bootstrap render: --output: {exc}", file=sys.stderr)
        return 2
    return 0
