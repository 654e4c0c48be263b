"""ServiceAccount admission (plugin/pkg/admission/serviceaccount): a pod runs as a service
account that exists, and gets the API credentials to act as it.

On create (mutating):
- a pod that names no service account runs as `default`;
- the service account must exist. `default` is made by the serviceaccount controller moments
  after its namespace, so it is looked for again for up to ~1.5 s, as upstream does; any other
  missing account refuses the pod at once (`error looking up service account ns/name: ...`);
- unless the pod or (failing that) the account sets `automountServiceAccountToken: false`, every
  container and init container that has nothing mounted at
  /var/run/secrets/kubernetes.io/serviceaccount mounts a projected `kube-api-access-<random>`
  volume: a bound token (3607 s), the namespace's `kube-root-ca.crt` and the namespace;
- a pod without imagePullSecrets takes the account's.

Mirror pods (mirrored static pods of a kubelet) are left alone, and refused if they reference a
service account, a Secret or a token projection: a kubelet may not hand them credentials.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controlplane.api import names
from controlplane.apiserver.admission.interface import Attributes, ValidationScope, forbidden

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = [
    "DEFAULT_API_TOKEN_MOUNT_PATH",
    "DEFAULT_SERVICE_ACCOUNT",
    "MIRROR_POD_ANNOTATION",
    "ServiceAccount",
    "token_volume_source",
]

DEFAULT_SERVICE_ACCOUNT = "default"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
DEFAULT_API_TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_VOLUME_PREFIX = "kube-api-access-"
# serviceaccount.WarnOnlyBoundTokenExpirationSeconds: an hour and a bit, so that the token's
# use past an hour is recognisable (the stale-token audit annotation) yet keeps working.
TOKEN_EXPIRATION_SECONDS = 3607
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
# How often `default` is looked for again (upstream: 10 tries, 100-200 ms apart).
DEFAULT_ACCOUNT_ATTEMPTS = 10

Obj = dict[str, Any]


def token_volume_source() -> Obj:
    """TokenVolumeSource: what every `kube-api-access-*` volume projects."""
    return {
        "defaultMode": 0o644,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }


def _containers(spec: Obj) -> Iterator[Obj]:
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                yield container


def _should_automount(account: Obj, spec: Obj) -> bool:
    if isinstance(spec.get("automountServiceAccountToken"), bool):
        return bool(spec["automountServiceAccountToken"])
    if isinstance(account.get("automountServiceAccountToken"), bool):
        return bool(account["automountServiceAccountToken"])
    return True


def mount_token(spec: Obj, rand: random.Random | None = None) -> None:
    """mountServiceAccountToken: every container without a mount at the token path gets one of
    the pod's `kube-api-access-*` volume (its existing one, else a new one)."""
    volumes = spec.get("volumes") or []
    existing = next(
        (
            v["name"]
            for v in volumes
            if isinstance(v, dict) and str(v.get("name", "")).startswith(SERVICE_ACCOUNT_VOLUME_PREFIX)
        ),
        None,
    )
    volume_name = existing or names.generate_name(SERVICE_ACCOUNT_VOLUME_PREFIX, rand)
    needs_volume = False
    for container in _containers(spec):
        mounts = container.get("volumeMounts") or []
        if any(isinstance(m, dict) and m.get("mountPath") == DEFAULT_API_TOKEN_MOUNT_PATH for m in mounts):
            continue  # a mount at the token path of its own wins
        container["volumeMounts"] = [
            *mounts,
            {"name": volume_name, "readOnly": True, "mountPath": DEFAULT_API_TOKEN_MOUNT_PATH},
        ]
        needs_volume = True
    if existing is None and needs_volume:
        spec["volumes"] = [*volumes, {"name": volume_name, "projected": token_volume_source()}]


def _references_secrets(spec: Obj) -> bool:
    """VisitPodSecretNames, for the places a mirror pod could name a Secret."""
    if spec.get("imagePullSecrets"):
        return True
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        if volume.get("secret") is not None:
            return True
        for source in (volume.get("projected") or {}).get("sources") or []:
            if isinstance(source, dict) and source.get("secret") is not None:
                return True
        for key in (
            "azureFile",
            "cephfs",
            "cinder",
            "flexVolume",
            "iscsi",
            "rbd",
            "scaleIO",
            "storageos",
            "csi",
        ):
            plugin = volume.get(key)
            if isinstance(plugin, dict) and (plugin.get("secretRef") or plugin.get("secretName")):
                return True
    for container in _containers(spec):
        for env in container.get("env") or []:
            ref = ((env or {}).get("valueFrom") or {}).get("secretKeyRef") if isinstance(env, dict) else None
            if ref:
                return True
        for source in container.get("envFrom") or []:
            if isinstance(source, dict) and source.get("secretRef"):
                return True
    return False


def _projects_tokens(spec: Obj) -> bool:
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for source in (volume.get("projected") or {}).get("sources") or []:
            if isinstance(source, dict) and source.get("serviceAccountToken") is not None:
                return True
    return False


@dataclass
class ServiceAccount:
    name: str = "ServiceAccount"
    # Upstream waits 100-200 ms between lookups of `default`; tests shorten it.
    retry_interval: tuple[float, float] = (0.1, 0.2)

    async def _account(self, ctx: ServerContext, attrs: Attributes, account: str) -> Obj:
        info = ctx.registry.get("", "v1", "serviceaccounts")
        assert info is not None
        attempts = DEFAULT_ACCOUNT_ATTEMPTS if account == DEFAULT_SERVICE_ACCOUNT else 1
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(random.uniform(*self.retry_interval))
            found = await ctx.store.get_shared(info, attrs.namespace, account)
            if found is not None:
                return found
        raise forbidden(
            attrs,
            f"error looking up service account {attrs.namespace}/{account}: "
            f'serviceaccount "{account}" not found',
        )

    async def admit(self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        if attrs.operation != "CREATE" or not attrs.is_resource("", "pods") or attrs.subresource:
            return
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if MIRROR_POD_ANNOTATION in annotations:
            return  # validated below; a mirror pod's spec is the kubelet's, not ours to change
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        # `serviceAccount` is the deprecated alias v1 conversion keeps in step with the name.
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT
        spec["serviceAccountName"] = name
        spec["serviceAccount"] = name
        account = await self._account(ctx, attrs, str(name))
        if _should_automount(account, spec):
            mount_token(spec)
        if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [
                {"name": ref.get("name", "")} for ref in account["imagePullSecrets"] if isinstance(ref, dict)
            ]

    async def validate(
        self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None, scope: ValidationScope
    ) -> None:
        if attrs.operation != "CREATE" or not attrs.is_resource("", "pods") or attrs.subresource:
            return
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if MIRROR_POD_ANNOTATION not in annotations:
            return
        spec = obj.get("spec") or {}
        if spec.get("serviceAccountName") or spec.get("serviceAccount"):
            raise forbidden(attrs, "a mirror pod may not reference service accounts")
        if _references_secrets(spec):
            raise forbidden(attrs, "a mirror pod may not reference secrets")
        if _projects_tokens(spec):
            raise forbidden(attrs, "a mirror pod may not use ServiceAccountToken volume projections")
