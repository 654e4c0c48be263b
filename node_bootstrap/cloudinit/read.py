"""Reading rendered user-data back: the files cloud-init would write, and the join parameters in them.

The simulated node agent boots from this, so it sees exactly what a real instance would: a
`#cloud-config` document (gzip-compressed when it was too large for EC2's 16 KiB), whose
`write_files` entries may be base64 and/or gzip encoded as cloud-init allows.
"""

from __future__ import annotations

import base64
import gzip
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from node_bootstrap.cloudinit.joinconfig import (
    BOOTSTRAP_CONFIG_PATH,
    BOOTSTRAP_KUBECONFIG_PATH,
    KUBELET_CONFIG_PATH,
    KUBELET_EXTRA_ARGS_PATH,
    JoinConfig,
    JoinConfigError,
)

__all__ = ["BootstrapKubeconfig", "RenderedNode", "decode_user_data", "read_user_data"]

GZIP_MAGIC = b"\x1f\x8b"
HEADER = "#cloud-config"


@dataclass(frozen=True)
class BootstrapKubeconfig:
    server: str
    ca_pem: bytes
    token: str


@dataclass(frozen=True)
class RenderedNode:
    """What an instance booted from Pinnace user-data knows before it has talked to anyone."""

    files: Mapping[str, bytes]
    join: JoinConfig
    bootstrap: BootstrapKubeconfig
    kubelet_config: Mapping[str, Any]
    kubelet_extra_args: tuple[str, ...]


def decode_user_data(data: bytes) -> dict[str, Any]:
    """The `#cloud-config` document in `data` (gunzipped first when compressed)."""
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise JoinConfigError(f"user-data: damaged gzip stream: {exc}") from exc
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise JoinConfigError("user-data: not UTF-8 text") from exc
    if not text.startswith(HEADER):
        raise JoinConfigError(f"user-data: does not start with {HEADER!r}")
    try:
        doc = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        raise JoinConfigError(f"user-data: not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise JoinConfigError("user-data: the cloud-config is not a mapping")
    return doc


def _content(entry: Mapping[str, Any]) -> bytes:
    raw = entry.get("content", "")
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    encoding = str(entry.get("encoding", "text/plain")).lower()
    if encoding in {"b64", "base64", "gz+b64", "gz+base64", "gzip+b64", "gzip+base64"}:
        data = base64.b64decode(data)
    if encoding.startswith(("gz", "gzip")):
        data = gzip.decompress(data)
    return data


def written_files(doc: Mapping[str, Any]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for entry in doc.get("write_files") or ():
        if not isinstance(entry, dict) or "path" not in entry:
            raise JoinConfigError("user-data: a write_files entry has no path")
        path = str(entry["path"])
        content = _content(entry)
        files[path] = files.get(path, b"") + content if entry.get("append") else content
    return files


def _bootstrap_kubeconfig(text: bytes, files: Mapping[str, bytes]) -> BootstrapKubeconfig:
    doc = yaml.load(text, Loader=yaml.CSafeLoader) or {}
    try:
        ctx_name = doc.get("current-context", "")
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
    except (KeyError, StopIteration, TypeError, AttributeError) as exc:
        raise JoinConfigError(f"{BOOTSTRAP_KUBECONFIG_PATH}: no usable current context") from exc
    if cluster.get("certificate-authority-data"):
        ca_pem = base64.b64decode(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority") in files:
        ca_pem = files[cluster["certificate-authority"]]
    else:
        raise JoinConfigError(
            f"{BOOTSTRAP_KUBECONFIG_PATH}: its certificate authority is not in the user-data"
        )
    token = str(user.get("token") or "")
    if not token:
        raise JoinConfigError(f"{BOOTSTRAP_KUBECONFIG_PATH}: no bootstrap token")
    return BootstrapKubeconfig(server=str(cluster["server"]), ca_pem=ca_pem, token=token)


def _extra_args(text: bytes) -> tuple[str, ...]:
    for line in text.decode().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == "KUBELET_EXTRA_ARGS":
            words = shlex.split(value)
            return tuple(shlex.split(words[0])) if len(words) == 1 else tuple(words)
    return ()


def read_user_data(data: bytes) -> RenderedNode:
    """Everything the node needs to join, from the files the user-data writes."""
    files = written_files(decode_user_data(data))
    missing = [
        p
        for p in (
            BOOTSTRAP_CONFIG_PATH,
            BOOTSTRAP_KUBECONFIG_PATH,
            KUBELET_CONFIG_PATH,
            KUBELET_EXTRA_ARGS_PATH,
        )
        if p not in files
    ]
    if missing:
        raise JoinConfigError(f"user-data: does not write {', '.join(missing)}")
    kubelet_config = yaml.load(files[KUBELET_CONFIG_PATH], Loader=yaml.CSafeLoader) or {}
    if not isinstance(kubelet_config, dict):
        raise JoinConfigError(f"{KUBELET_CONFIG_PATH}: not a mapping")
    return RenderedNode(
        files=files,
        join=JoinConfig.from_json(files[BOOTSTRAP_CONFIG_PATH]),
        bootstrap=_bootstrap_kubeconfig(files[BOOTSTRAP_KUBECONFIG_PATH], files),
        kubelet_config=kubelet_config,
        kubelet_extra_args=_extra_args(files[KUBELET_EXTRA_ARGS_PATH]),
    )
