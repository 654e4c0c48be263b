"""A fresh bootstrap token per Machine, and the one permission its node needs beyond joining.

The token is a kubeadm bootstrap token (`bootstrap-token-<id>` in kube-system, usages
authentication and signing) in the group `system:bootstrappers:kubeadm:default-node-token`, so
the node joins through the CSR auto-approval every kubeadm node uses. Its TTL is the pool's
`tokenTTL`; the Secret is owned by the Machine and deleted once the node runs. A ClusterRole
and ClusterRoleBinding, also owned by the Machine, let only the token's user
(`system:bootstrap:<id>`) read and patch that one Machine's status, where the node reports its
bootstrap steps.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ccm.provisioning import api
from controlplane.client import ResourcePath
from controlplane.tokens_cli import DEFAULT_GROUP, SECRET_PREFIX, generate_token, token_secret

__all__ = [
    "CLUSTER_ROLES",
    "CLUSTER_ROLE_BINDINGS",
    "TOKEN_ANNOTATION",
    "TOKEN_NAMESPACE",
    "bootstrap_binding",
    "bootstrap_role",
    "generate_token",
    "machine_owner_reference",
    "machine_token_secret",
    "rbac_name",
    "token_from_secret",
    "token_secret_name",
]

TOKEN_NAMESPACE = "kube-system"
# Which token a Machine was given (the id only: the id is not a secret, the token's second half is).
TOKEN_ANNOTATION = f"{api.GROUP}/bootstrap-token-id"
CLUSTER_ROLES = ResourcePath("rbac.authorization.k8s.io", "v1", "clusterroles", namespaced=False)
CLUSTER_ROLE_BINDINGS = ResourcePath(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", namespaced=False
)


def machine_owner_reference(machine: Mapping[str, Any]) -> dict[str, Any]:
    meta = machine.get("metadata") or {}
    return {
        "apiVersion": api.API_VERSION,
        "kind": "Machine",
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def token_secret_name(token_id: str) -> str:
    return SECRET_PREFIX + token_id


def machine_token_secret(
    token: str, machine: Mapping[str, Any], *, ttl_seconds: float, now: datetime
) -> dict[str, Any]:
    name = str((machine.get("metadata") or {}).get("name", ""))
    secret = token_secret(
        token,
        ttl=timedelta(seconds=ttl_seconds),
        usages=("authentication", "signing"),
        groups=(DEFAULT_GROUP,),
        description=f"bootstrap token for Machine {name}",
        now=now,
    )
    secret["metadata"]["labels"] = {api.LABEL_MACHINE: name}
    secret["metadata"]["ownerReferences"] = [machine_owner_reference(machine)]
    return secret


def token_from_secret(secret: Mapping[str, Any], now: datetime, *, min_remaining: float = 60.0) -> str | None:
    """`<id>.<secret>` when the Secret holds a token valid for at least `min_remaining` more seconds."""
    data: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(value).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
    token_id, part = data.get("token-id", ""), data.get("token-secret", "")
    if not token_id or not part:
        return None
    expiration = data.get("expiration")
    if expiration:
        try:
            expires = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
        except ValueError:
            return None
        if (expires - now).total_seconds() < min_remaining:
            return None
    return f"{token_id}.{part}"


def rbac_name(machine_name: str) -> str:
    return f"{api.GROUP}:machine-bootstrap:{machine_name}"


def bootstrap_role(machine: Mapping[str, Any]) -> dict[str, Any]:
    name = str((machine.get("metadata") or {}).get("name", ""))
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": rbac_name(name),
            "labels": {api.LABEL_MACHINE: name},
            "ownerReferences": [machine_owner_reference(machine)],
        },
        "rules": [
            {
                "apiGroups": [api.GROUP],
                "resources": [f"{api.MACHINES}/status"],
                "resourceNames": [name],
                "verbs": ["get", "patch"],
            }
        ],
    }


def bootstrap_binding(machine: Mapping[str, Any], token_id: str) -> dict[str, Any]:
    name = str((machine.get("metadata") or {}).get("name", ""))
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": rbac_name(name),
            "labels": {api.LABEL_MACHINE: name},
            "ownerReferences": [machine_owner_reference(machine)],
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": rbac_name(name)},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"system:bootstrap:{token_id}"}
        ],
    }
