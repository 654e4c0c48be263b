"""NodeRestriction (upstream plugin/pkg/admission/noderestriction): what a node (user
`system:node:<name>` in `system:nodes`) may write, beyond what the Node authorizer lets through.

A node may create only mirror pods bound to itself and referencing nothing else, delete and update
the status of only its own pods, modify only its own Node (not its taints, not labels outside the
kubelet's set nor under node-restriction.kubernetes.io), only its own Lease in kube-node-lease and
only the status of PVCs. Other users pass untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from controlplane.api import errors
from controlplane.api.node_labels import is_kubelet_label, is_kubernetes_label, label_namespace
from controlplane.apiserver.admission.interface import (
    REQUEST_USER,
    Attributes,
    forbidden,
)

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = [
    "MIRROR_POD_ANNOTATION",
    "NodeRestriction",
    "forbidden_node_labels",
    "is_kubelet_label",
    "node_identity",
    "pod_references",
]

Obj = dict[str, Any]

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"


def node_identity(user: Mapping[str, Any] | None) -> tuple[str, bool]:
    """(node name, is a node), as upstream's NodeIdentifier: a name under system:node: and the
    group system:nodes. A node whose name is empty is a node nobody can match."""
    if user is None:
        return "", False
    name = str(user.get("username") or "")
    if not name.startswith(NODE_USER_PREFIX):
        return "", False
    if NODES_GROUP not in (user.get("groups") or ()):
        return "", False
    return name[len(NODE_USER_PREFIX) :], True


def forbidden_node_labels(new: Mapping[str, str], old: Mapping[str, str]) -> list[str]:
    """The changed label keys a node may not add, remove or change (sorted)."""
    modified = {k for k, v in new.items() if old.get(k) != v} | {k for k, v in old.items() if new.get(k) != v}
    out = set()
    for key in modified:
        namespace = label_namespace(key)
        if namespace == NODE_RESTRICTION_LABEL_NAMESPACE or namespace.endswith(
            "." + NODE_RESTRICTION_LABEL_NAMESPACE
        ):
            out.add(key)
        if is_kubernetes_label(key) and not is_kubelet_label(key):
            out.add(key)
    return sorted(out)


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _containers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in _l(spec.get(key))
        if isinstance(c, dict)
    ]


def pod_references(pod: Mapping[str, Any]) -> dict[str, set[str]]:
    """Names of the secrets, configmaps, PVCs and service account a pod refers to
    (podutil.VisitPodSecretNames / VisitPodConfigmapNames, ephemeral volumes as their claims)."""
    spec = _d(pod.get("spec"))
    pod_name = str(_d(pod.get("metadata")).get("name") or "")
    secrets: set[str] = set()
    configmaps: set[str] = set()
    pvcs: set[str] = set()
    for ref in _l(spec.get("imagePullSecrets")):
        if _d(ref).get("name"):
            secrets.add(str(ref["name"]))
    for container in _containers(spec):
        for env_from in _l(container.get("envFrom")):
            if _d(_d(env_from).get("secretRef")).get("name"):
                secrets.add(str(env_from["secretRef"]["name"]))
            if _d(_d(env_from).get("configMapRef")).get("name"):
                configmaps.add(str(env_from["configMapRef"]["name"]))
        for env in _l(container.get("env")):
            source = _d(_d(env).get("valueFrom"))
            if _d(source.get("secretKeyRef")).get("name"):
                secrets.add(str(source["secretKeyRef"]["name"]))
            if _d(source.get("configMapKeyRef")).get("name"):
                configmaps.add(str(source["configMapKeyRef"]["name"]))
    for raw_volume in _l(spec.get("volumes")):
        volume = _d(raw_volume)
        if _d(volume.get("secret")).get("secretName"):
            secrets.add(str(volume["secret"]["secretName"]))
        if _d(volume.get("configMap")).get("name"):
            configmaps.add(str(volume["configMap"]["name"]))
        for source in _l(_d(volume.get("projected")).get("sources")):
            if _d(_d(source).get("secret")).get("name"):
                secrets.add(str(source["secret"]["name"]))
            if _d(_d(source).get("configMap")).get("name"):
                configmaps.add(str(source["configMap"]["name"]))
        # Volume plugins that name a secret in the pod's namespace.
        for plugin in ("azureFile",):
            if _d(volume.get(plugin)).get("secretName"):
                secrets.add(str(volume[plugin]["secretName"]))
        for plugin in ("cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos", "csi"):
            plugin_source = _d(volume.get(plugin))
            ref = _d(plugin_source.get("secretRef") or plugin_source.get("nodePublishSecretRef"))
            if ref.get("name"):
                secrets.add(str(ref["name"]))
        if _d(volume.get("persistentVolumeClaim")).get("claimName"):
            pvcs.add(str(volume["persistentVolumeClaim"]["claimName"]))
        if volume.get("ephemeral") is not None and volume.get("name"):
            pvcs.add(f"{pod_name}-{volume['name']}")
    account = spec.get("serviceAccountName") or ""
    return {
        "secrets": secrets,
        "configmaps": configmaps,
        "persistentvolumeclaims": pvcs,
        "serviceaccounts": {str(account)} if account else set(),
    }


class NodeRestriction:
    name = "NodeRestriction"

    async def admit(self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        node, is_node = node_identity(REQUEST_USER.get())
        if not is_node or attrs.info.custom:
            return
        if not node:
            raise forbidden(attrs, f'could not determine node from user "{_user_name()}"')
        group, plural = attrs.info.group, attrs.info.plural
        if (group, plural) == ("", "pods"):
            if attrs.subresource == "":
                await self._pod(ctx, node, attrs, obj)
            elif attrs.subresource == "status":
                self._pod_status(node, attrs, obj, old)
            elif attrs.subresource == "eviction":
                await self._pod_eviction(ctx, node, attrs, obj)
            else:
                raise forbidden(
                    attrs,
                    f"unexpected pod subresource \"{attrs.subresource}\", only 'status' and 'eviction' are allowed",
                )
        elif (group, plural) == ("", "nodes"):
            self._node(node, attrs, obj, old)
        elif (group, plural) == ("", "persistentvolumeclaims"):
            if attrs.subresource != "status":
                raise forbidden(attrs, "may only update PVC status")
            self._pvc_status(node, attrs, obj, old)
        elif (group, plural) == ("", "serviceaccounts"):
            if attrs.operation == "CREATE" and attrs.subresource == "token":
                await self._token_request(ctx, node, attrs, obj)
        elif (group, plural) == ("coordination.k8s.io", "leases"):
            self._lease(node, attrs, obj)
        elif (group, plural) == ("storage.k8s.io", "csinodes"):
            name = obj.get("metadata", {}).get("name") if attrs.operation == "CREATE" else attrs.name
            if name != node:
                raise forbidden(attrs, "can only access CSINode with the same name as the requesting node")

    async def admit_delete(self, ctx: ServerContext, attrs: Attributes, old: Obj) -> None:
        node, is_node = node_identity(REQUEST_USER.get())
        if not is_node or attrs.info.custom:
            return
        if not node:
            raise forbidden(attrs, f'could not determine node from user "{_user_name()}"')
        group, plural = attrs.info.group, attrs.info.plural
        if (group, plural) == ("", "pods"):
            if _d(old.get("spec")).get("nodeName") != node:
                raise forbidden(attrs, f'node "{node}" can only delete pods with spec.nodeName set to itself')
        elif (group, plural) == ("", "nodes"):
            if attrs.name != node:
                raise forbidden(attrs, f'node "{node}" is not allowed to modify node "{attrs.name}"')
        elif (group, plural) == ("", "persistentvolumeclaims"):
            raise forbidden(attrs, "may only update PVC status")
        elif (group, plural) == ("coordination.k8s.io", "leases"):
            self._lease(node, attrs, old)

    # -- pods ------------------------------------------------------------------------------------

    async def _pod(self, ctx: ServerContext, node: str, attrs: Attributes, pod: Obj) -> None:
        if attrs.operation != "CREATE":
            raise forbidden(
                attrs,
                f'unexpected operation "{attrs.operation}", node "{node}" can only create and delete mirror pods',
            )
        meta = _d(pod.get("metadata"))
        spec = _d(pod.get("spec"))
        if MIRROR_POD_ANNOTATION not in _d(meta.get("annotations")):
            raise forbidden(
                attrs,
                f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, node "{node}" can only create mirror pods',
            )
        if spec.get("nodeName") != node:
            raise forbidden(attrs, f'node "{node}" can only create pods with spec.nodeName set to itself')
        owners = _l(meta.get("ownerReferences"))
        if len(owners) > 1:
            raise forbidden(
                attrs, f'node "{node}" can only create pods with a single owner reference set to itself'
            )
        if not owners:
            raise forbidden(
                attrs, f'node "{node}" can only create pods with an owner reference set to itself'
            )
        owner = _d(owners[0])
        if owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node:
            raise forbidden(
                attrs, f'node "{node}" can only create pods with an owner reference set to itself'
            )
        if not owner.get("controller"):
            raise forbidden(
                attrs, f'node "{node}" can only create pods with a controller owner reference set to itself'
            )
        if owner.get("blockOwnerDeletion"):
            raise forbidden(attrs, f'node "{node}" must not set blockOwnerDeletion on an owner reference')
        node_info = ctx.registry.get("", "v1", "nodes")
        assert node_info is not None
        stored = await ctx.store.get_or_none(node_info, "", node)
        if stored is None:
            raise errors.NotFound.for_object("nodes", "", node)
        if owner.get("uid") != stored["metadata"].get("uid"):
            raise forbidden(
                attrs,
                f"node {node} UID mismatch: expected {owner.get('uid')} got {stored['metadata'].get('uid')}",
            )
        refs = pod_references(pod)
        if spec.get("serviceAccountName"):
            raise forbidden(attrs, f'node "{node}" can not create pods that reference a service account')
        if refs["secrets"]:
            raise forbidden(attrs, f'node "{node}" can not create pods that reference secrets')
        if refs["configmaps"]:
            raise forbidden(attrs, f'node "{node}" can not create pods that reference configmaps')
        for volume in _l(spec.get("volumes")):
            for source in _l(_d(_d(volume).get("projected")).get("sources")):
                if _d(source).get("clusterTrustBundle") is not None:
                    raise forbidden(
                        attrs, f'node "{node}" can not create pods that reference clustertrustbundles'
                    )
        if any(_d(v).get("persistentVolumeClaim") is not None for v in _l(spec.get("volumes"))):
            raise forbidden(attrs, f'node "{node}" can not create pods that reference persistentvolumeclaims')

    async def _pod_eviction(self, ctx: ServerContext, node: str, attrs: Attributes, eviction: Obj) -> None:
        """admitPodEviction: a node may evict only pods bound to itself (its role allows creating
        pods/eviction anywhere)."""
        if attrs.operation != "CREATE":
            raise forbidden(attrs, f"unexpected operation {attrs.operation}")
        # The name in the path, if any, rather than the one in the submitted Eviction.
        name = attrs.name or str(_d(eviction.get("metadata")).get("name") or "")
        if not name:
            raise forbidden(attrs, "could not determine pod from request data")
        existing = await ctx.store.get(attrs.info, attrs.namespace, name)  # NotFound stays NotFound
        if _d(existing.get("spec")).get("nodeName") != node:
            raise forbidden(attrs, f"node {node} can only evict pods with spec.nodeName set to itself")

    def _pod_status(self, node: str, attrs: Attributes, pod: Obj, old: Obj | None) -> None:
        if attrs.operation != "UPDATE" or old is None:
            raise forbidden(attrs, f'unexpected operation "{attrs.operation}"')
        if _d(old.get("spec")).get("nodeName") != node:
            raise forbidden(
                attrs, f'node "{node}" can only update pod status for pods with spec.nodeName set to itself'
            )
        if _d(_d(old.get("metadata")).get("labels")) != _d(_d(pod.get("metadata")).get("labels")):
            raise forbidden(attrs, f'node "{node}" cannot update labels through pod status')
        if _resource_claims(old) != _resource_claims(pod):
            raise forbidden(attrs, f'node "{node}" cannot update resource claim statues')

    # -- nodes, PVCs, leases -----------------------------------------------------------------------

    def _node(self, node: str, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        requested = attrs.name or str(_d(obj.get("metadata")).get("name") or "")
        if requested != node:
            raise forbidden(attrs, f'node "{node}" is not allowed to modify node "{requested}"')
        labels = _d(_d(obj.get("metadata")).get("labels"))
        spec = _d(obj.get("spec"))
        if attrs.operation == "CREATE":
            if spec.get("configSource") is not None:
                raise forbidden(
                    attrs, f'node "{node}" is not allowed to create pods with a non-nil configSource'
                )
            bad = forbidden_node_labels(labels, {})
            if bad:
                raise forbidden(
                    attrs, f'node "{node}" is not allowed to set the following labels: {", ".join(bad)}'
                )
        elif attrs.operation == "UPDATE" and old is not None:
            old_spec = _d(old.get("spec"))
            if spec.get("configSource") is not None and spec.get("configSource") != old_spec.get(
                "configSource"
            ):
                raise forbidden(
                    attrs,
                    f'node "{node}" is not allowed to update configSource to a new non-nil configSource',
                )
            if (spec.get("taints") or None) != (old_spec.get("taints") or None):
                raise forbidden(attrs, f'node "{node}" is not allowed to modify taints')
            bad = forbidden_node_labels(labels, _d(_d(old.get("metadata")).get("labels")))
            if bad:
                raise forbidden(attrs, f"is not allowed to modify labels: {', '.join(bad)}")

    def _pvc_status(self, node: str, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        if attrs.operation != "UPDATE" or old is None:
            raise forbidden(attrs, f'unexpected operation "{attrs.operation}"')

        def comparable(pvc: Obj) -> Obj:
            out = copy.deepcopy(pvc)
            meta = out.setdefault("metadata", {})
            meta.pop("resourceVersion", None)
            meta.pop("managedFields", None)
            status = out.setdefault("status", {})
            for key in ("capacity", "conditions", "allocatedResourceStatuses", "allocatedResources"):
                status.pop(key, None)
            return out

        if comparable(obj) != comparable(old):
            raise forbidden(
                attrs,
                f'node "{node}" is not allowed to update fields other than status.capacity and status.conditions',
            )

    async def _token_request(self, ctx: ServerContext, node: str, attrs: Attributes, request: Obj) -> None:
        """A node's TokenRequest must be bound to a pod scheduled on it (by uid)."""
        ref = _d(_d(request.get("spec")).get("boundObjectRef"))
        if ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
            raise forbidden(attrs, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise forbidden(attrs, "node requested token with a pod binding without a uid")
        pod_info = ctx.registry.get("", "v1", "pods")
        assert pod_info is not None
        pod = await ctx.store.get_or_none(pod_info, attrs.namespace, str(ref["name"]))
        if pod is None:
            raise errors.NotFound.for_object("pods", "", str(ref["name"]))
        if ref["uid"] != _d(pod.get("metadata")).get("uid"):
            raise forbidden(
                attrs,
                f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record. "
                "The object might have been deleted and then recreated",
            )
        if _d(pod.get("spec")).get("nodeName") != node:
            raise forbidden(attrs, "node requested token bound to a pod scheduled on a different node")

    def _lease(self, node: str, attrs: Attributes, obj: Obj) -> None:
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            raise forbidden(attrs, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        name = _d(obj.get("metadata")).get("name") if attrs.operation == "CREATE" else attrs.name
        if name != node:
            raise forbidden(attrs, "can only access node lease with the same name as the requesting node")


def _resource_claims(pod: Obj) -> list[tuple[str, str | None]]:
    return [
        (str(_d(s).get("name")), _d(s).get("resourceClaimName"))
        for s in _l(_d(pod.get("status")).get("resourceClaimStatuses"))
    ]


def _user_name() -> str:
    user = REQUEST_USER.get()
    return str(user.get("username") or "") if user is not None else ""
