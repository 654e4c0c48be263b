"""ServiceAccount: a pod that names no service account runs as `default`.

Upstream also refuses pods whose service account does not exist yet and mounts the API token;
both wait for the authentication work (the ServiceAccount controller creates `default`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controlplane.apiserver.admission.interface import Attributes

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = ["DEFAULT_SERVICE_ACCOUNT", "MIRROR_POD_ANNOTATION", "ServiceAccount"]

DEFAULT_SERVICE_ACCOUNT = "default"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"

Obj = dict[str, Any]


@dataclass
class ServiceAccount:
    name: str = "ServiceAccount"

    async def admit(self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        if attrs.operation != "CREATE" or not attrs.is_resource("", "pods") or attrs.subresource:
            return
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if MIRROR_POD_ANNOTATION in annotations:
            return  # static pods mirrored by a kubelet may not use service accounts
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        # `serviceAccount` is the deprecated alias v1 conversion keeps in step with the name.
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT
        spec["serviceAccountName"] = account
        spec["serviceAccount"] = account
