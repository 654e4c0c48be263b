"""Root CA certificate publisher (upstream pkg/controller/certificates/rootcacertpublisher): a
`kube-root-ca.crt` ConfigMap in every namespace, holding the CA that verifies the API server.

In-cluster clients read it (ServiceAccount token volumes project it as `ca.crt`). The CA is
`--root-ca-file`, or else the one the controller manager's own kubeconfig trusts. A ConfigMap
whose data or description annotation someone changed is put back; one that is deleted is made
again.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from controlplane.api import errors
from controlplane.controllers.runtime import Controller, R
from controlplane.controllers.status_causes import namespace_terminating

__all__ = ["DESCRIPTION", "DESCRIPTION_ANNOTATION", "ROOT_CA_CONFIGMAP", "RootCACertPublisher"]

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
    "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
    "distributions of Kubernetes clusters."
)


class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"
    workers = 1

    def setup(self) -> None:
        ca_file = self.ctx.config.extra.get("root_ca_file")
        if ca_file:
            self.root_ca = Path(str(ca_file)).read_text()
        else:
            self.root_ca = bytes(getattr(self.ctx.client, "ca_pem", b"")).decode()
        if not self.root_ca:
            self.log.warning(
                "no --root-ca-file and no CA in the kubeconfig: kube-root-ca.crt is not published"
            )
            return
        self.namespaces = self.ctx.informers.informer(R.NAMESPACES)
        self.configmaps = self.ctx.informers.informer(R.CONFIGMAPS)
        self.namespaces.add_handler(self._on_namespace)
        self.configmaps.add_handler(self._on_configmap)

    def _on_namespace(self, event: str, _old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event != "DELETED" and new is not None:
            self.enqueue(new["metadata"]["name"])

    def _on_configmap(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        # Upstream reacts to updates and deletions of its ConfigMap; adds are its own.
        if event == "ADDED":
            return
        changed = new if event == "MODIFIED" else (old or new)
        if changed is not None and changed["metadata"].get("name") == ROOT_CA_CONFIGMAP:
            self.enqueue(str(changed["metadata"].get("namespace", "")))

    async def reconcile(self, key: str) -> float | None:
        if self.namespaces.get(key) is None:
            return None
        data = {"ca.crt": self.root_ca}
        current = self.configmaps.get(f"{key}/{ROOT_CA_CONFIGMAP}")
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_CONFIGMAP, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                "data": data,
            }
            try:
                await self.ctx.client.create(R.CONFIGMAPS, body, key)
            except errors.AlreadyExists:
                return None  # our cache lags our own (or another copy's) write; its event requeues
            except errors.NotFound:
                return None  # the namespace is gone
            except errors.Forbidden as exc:
                if namespace_terminating(exc):
                    return None
                raise
            return None
        annotations = current["metadata"].get("annotations") or {}
        if current.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
            return None
        updated = copy.deepcopy(current)
        updated["data"] = data
        updated["metadata"].setdefault("annotations", {})[DESCRIPTION_ANNOTATION] = DESCRIPTION
        try:
            await self.ctx.client.request("PUT", R.CONFIGMAPS.url(key, ROOT_CA_CONFIGMAP), body=updated)
        except errors.NotFound:
            return None  # deleted meanwhile: its DELETED event requeues the namespace
        return None
