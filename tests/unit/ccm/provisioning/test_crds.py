"""The two CRDs: structural schemas with the defaults, subresources, columns and names."""

from __future__ import annotations

import copy
from typing import Any

from ccm.provisioning import api
from ccm.provisioning.crds import ensure_crds, machine_crd, nodepool_crd


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in (schema.get("properties") or {}).items():
        out += walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        out += walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += walk(schema["additionalProperties"], f"{path}{{}}")
    return out


def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    assert only["name"] == api.VERSION and only["served"] and only["storage"]
    return dict(only)


def test_schemas_are_structural() -> None:
    for crd in (nodepool_crd(), machine_crd()):
        for path, node in walk(version(crd)["schema"]["openAPIV3Schema"]):
            # Every node has a type, except int-or-string ones, which must not have one.
            if node.get("x-kubernetes-int-or-string"):
                assert "type" not in node and "anyOf" not in node, path
            else:
                assert node.get("type") in {"object", "array", "string", "integer", "boolean"}, path


def test_nodepool_defaults_scale_and_columns() -> None:
    crd = nodepool_crd()
    assert crd["metadata"]["name"] == "nodepools.infra.pinnace.dev"
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["np"]
    assert "pinnace" in crd["spec"]["names"]["categories"]
    v = version(crd)
    assert v["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    spec = v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["replicas"]["default"] == 1
    assert spec["os"]["default"] == "ubuntu-24.04"
    assert spec["kubernetesVersion"]["default"] == "1.33"
    boot = spec["bootstrap"]
    assert boot["default"] == {} and boot["properties"]["joinTimeout"]["default"] == "10m"
    assert boot["properties"]["tokenTTL"]["default"] == "30m"
    assert spec["remediation"]["properties"]["maxUnhealthy"]["default"] == 1
    shown = [c["name"] for c in v["additionalPrinterColumns"] if not c.get("priority")]
    assert shown == ["Desired", "Ready", "Age"]


def test_machine_status_and_columns() -> None:
    crd = machine_crd()
    assert crd["spec"]["names"]["shortNames"] == ["mach"]
    v = version(crd)
    assert v["subresources"] == {"status": {}}
    status = v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == [p.value for p in api.MachinePhase]
    step = status["bootstrap"]["properties"]["steps"]["items"]["properties"]
    assert set(step) == {"name", "state", "startedAt", "finishedAt", "logTail"}
    shown = [c["name"] for c in v["additionalPrinterColumns"] if not c.get("priority")]
    assert shown == ["Phase", "Instance", "Node", "Age"]


class CRDClient:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.puts = 0

    async def get(self, rp: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        from controlplane.api import errors

        if name not in self.objects:
            raise errors.NotFound(message=name)
        return copy.deepcopy(self.objects[name])

    async def create(self, rp: Any, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        stored = {**copy.deepcopy(obj), "status": {"conditions": [{"type": "Established", "status": "True"}]}}
        stored["metadata"]["resourceVersion"] = "1"
        self.objects[obj["metadata"]["name"]] = stored
        return stored

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> dict[str, Any]:
        assert method == "PUT" and body["metadata"]["resourceVersion"] == "1"
        self.puts += 1
        self.objects[body["metadata"]["name"]]["spec"] = body["spec"]
        return dict(body)


async def test_ensure_crds_creates_then_updates_only_what_changed() -> None:
    client = CRDClient()
    await ensure_crds(client)  # type: ignore[arg-type]
    assert sorted(client.objects) == ["machines.infra.pinnace.dev", "nodepools.infra.pinnace.dev"]
    await ensure_crds(client)  # type: ignore[arg-type]
    assert client.puts == 0
    client.objects["machines.infra.pinnace.dev"]["spec"]["versions"] = []
    await ensure_crds(client)  # type: ignore[arg-type]
    assert client.puts == 1
