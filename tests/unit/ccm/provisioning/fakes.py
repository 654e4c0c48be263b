"""An in-memory API and cloud for the provisioning reconcilers' unit tests."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane.api import errors
from controlplane.client import ResourcePath
from providers.errors import NotFound as CloudNotFound
from providers.model import Instance, InstanceSpec, InstanceState, NodeAddress
from providers.tags import owner_tags
from tests.unit.ccm.fakes import merge

Obj = dict[str, Any]


def _matches(obj: Obj, params: Any) -> bool:
    params = params or {}
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, str(params.get("labelSelector", "")).split(",")):
        key, eq, value = term.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    for term in filter(None, str(params.get("fieldSelector", "")).split(",")):
        key, _, value = term.partition("=")
        current: Any = obj
        for part in key.split("."):
            current = (current or {}).get(part) if isinstance(current, dict) else None
        if str(current or "") != value:
            return False
    return True


class FakeAPI:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Obj] = {}
        self.rv = itertools.count(100)
        self.uids = itertools.count(1)
        self.evictions: list[str] = []
        self.refuse_evictions = 0  # how many evictions answer 429 before they are allowed

    @staticmethod
    def _key(rp: ResourcePath, name: str, namespace: str | None) -> tuple[str, str]:
        return (rp.plural, f"{namespace}/{name}" if rp.namespaced and namespace else name)

    def put(self, rp: ResourcePath, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self.uids)}")
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self.rv))
        self.objects[self._key(rp, meta["name"], meta.get("namespace"))] = obj
        return copy.deepcopy(obj)

    def items(self, rp: ResourcePath) -> list[Obj]:
        return [copy.deepcopy(o) for (plural, _), o in sorted(self.objects.items()) if plural == rp.plural]

    def _get(self, rp: ResourcePath, name: str, namespace: str | None) -> Obj:
        found = self.objects.get(self._key(rp, name, namespace))
        if found is None:
            raise errors.NotFound(message=f'{rp.plural} "{name}" not found')
        return found

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> Obj:
        return copy.deepcopy(self._get(rp, name, namespace))

    async def list(self, rp: ResourcePath, namespace: str | None = None, *, params: Any = None) -> Obj:
        items = [
            o
            for o in self.items(rp)
            if (namespace is None or o["metadata"].get("namespace") == namespace) and _matches(o, params)
        ]
        return {"items": items}

    async def create(self, rp: ResourcePath, obj: Obj, namespace: str | None = None) -> Obj:
        meta = obj["metadata"]
        if namespace:
            meta = {**meta, "namespace": namespace}
        if self._key(rp, meta["name"], meta.get("namespace")) in self.objects:
            raise errors.AlreadyExists(message=f'"{meta["name"]}" already exists')
        return self.put(rp, {**obj, "metadata": meta})

    def _store(self, rp: ResourcePath, obj: Obj) -> Obj:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.objects.pop(self._key(rp, meta["name"], meta.get("namespace")), None)
            return copy.deepcopy(obj)
        meta["resourceVersion"] = str(next(self.rv))
        self.objects[self._key(rp, meta["name"], meta.get("namespace"))] = obj
        return copy.deepcopy(obj)

    async def patch(
        self,
        rp: ResourcePath,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str = "",
        **_: Any,
    ) -> Obj:
        current = self._get(rp, name, namespace)
        wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted_rv is not None and wanted_rv != current["metadata"]["resourceVersion"]:
            raise errors.Conflict(message="the object has been modified")
        updated = merge(current, patch)
        if subresource == "status":
            updated = {**current, "status": updated.get("status", {})}
        elif "status" in current:
            updated["status"] = copy.deepcopy(current["status"])
        return self._store(rp, updated)

    async def delete(
        self, rp: ResourcePath, name: str, namespace: str | None = None, *, options: Any = None
    ) -> Obj | None:
        current = copy.deepcopy(self._get(rp, name, namespace))
        current["metadata"].setdefault("deletionTimestamp", "2026-01-01T00:00:00Z")
        return self._store(rp, current)

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Obj:
        assert method == "POST" and path.endswith("/eviction"), (method, path)
        parts = path.split("/")
        namespace, name = parts[4], parts[6]
        if self.refuse_evictions > 0:
            self.refuse_evictions -= 1
            raise errors.TooManyRequests(
                message="Cannot evict pod as it would violate the pod's disruption budget."
            )
        self.evictions.append(f"{namespace}/{name}")
        self.objects.pop(("pods", f"{namespace}/{name}"), None)
        return {}


class FakeInstances:
    """Idempotent by name like the real ones; a terminated instance first shuts down."""

    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}
        self.ids = itertools.count(1)
        self.created: list[InstanceSpec] = []

    async def create_instance(self, cluster_id: str, spec: InstanceSpec) -> Instance:
        for instance in self.instances.values():
            if instance.name == spec.name and instance.state != InstanceState.TERMINATED:
                return instance
        self.created.append(spec)
        iid = f"i-{next(self.ids):04d}"
        zone = spec.zone or "z-a"
        instance = Instance(
            id=iid,
            provider_id=f"local:///{zone}/{iid}",
            name=spec.name,
            state=InstanceState.RUNNING,
            instance_type=spec.instance_type,
            zone=zone,
            region="r",
            addresses=(NodeAddress("InternalIP", f"10.0.0.{len(self.instances) + 1}"),),
            tags={**spec.tags, **owner_tags(cluster_id, spec.owner), "Name": spec.name},
            owner=spec.owner,
        )
        self.instances[iid] = instance
        return instance

    async def delete_instance(self, cluster_id: str, instance_id: str) -> None:
        instance = self.instances.get(instance_id)
        if instance is not None and instance.state == InstanceState.RUNNING:
            self.instances[instance_id] = _with_state(instance, InstanceState.SHUTTING_DOWN)

    async def get_instance(self, cluster_id: str, instance_id: str) -> Instance:
        if instance_id not in self.instances:
            raise CloudNotFound(instance_id)
        return self.instances[instance_id]

    async def list_instances(self, cluster_id: str) -> list[Instance]:
        out = [i for i in self.instances.values() if i.state != InstanceState.TERMINATED]
        for instance in out:  # shutting down takes one look
            if instance.state == InstanceState.SHUTTING_DOWN:
                self.instances[instance.id] = _with_state(instance, InstanceState.TERMINATED)
        return out

    async def get_user_data(self, cluster_id: str, instance_id: str) -> bytes:
        return b""

    def live(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.state != InstanceState.TERMINATED]


def _with_state(instance: Instance, state: InstanceState) -> Instance:
    from dataclasses import replace

    return replace(instance, state=state)


def ca_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)
