"""`prepare_for_update` builds the new object from the stored one without deep copies, and
without ever sharing a dict or list with the stored object (which the caller keeps comparing
against), nor changing any value's type or key order."""

from __future__ import annotations

from typing import Any

import orjson

from controlplane.api import strategy
from controlplane.api.patch._smp_json import deep_copy
from controlplane.api.resources import default_registry


def containers(value: Any) -> set[int]:
    out: set[int] = set()
    if isinstance(value, dict):
        out.add(id(value))
        for v in value.values():
            out |= containers(v)
    elif isinstance(value, list):
        out.add(id(value))
        for v in value:
            out |= containers(v)
    return out


PODS = default_registry().get("", "v1", "pods")
DEPLOYMENTS = default_registry().get("apps", "v1", "deployments")
assert PODS is not None and DEPLOYMENTS is not None

STORED: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "p",
        "namespace": "default",
        "uid": "u-1",
        "creationTimestamp": "2024-01-01T00:00:00Z",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "r"}],
        "resourceVersion": "7",
    },
    "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx", "args": ["a", 1]}]},
    "status": {"phase": "Pending"},
}


def test_status_write_keeps_the_stored_spec_and_shares_nothing_with_it() -> None:
    old = deep_copy(STORED)
    new = deep_copy(STORED)
    new["status"] = {"phase": "Running"}
    new["spec"]["nodeName"] = "elsewhere"  # a status write cannot move the pod
    new["metadata"]["ownerReferences"] = []  # nor change its owners
    strategy.prepare_for_update(PODS, new, old, subresource="status")
    assert new["spec"] == STORED["spec"]
    assert new["metadata"]["ownerReferences"] == STORED["metadata"]["ownerReferences"]
    assert new["status"] == {"phase": "Running"}
    assert list(new) == list(STORED)
    assert not containers(new) & containers(old)
    # Writes to the result (defaulting, admission) never reach the stored object.
    new["spec"]["containers"][0]["args"].append("x")
    new["metadata"]["ownerReferences"][0]["name"] = "changed"
    assert orjson.dumps(old) == orjson.dumps(STORED)


def test_status_write_keeps_the_new_objects_equal_values_but_not_other_types() -> None:
    old = deep_copy(STORED)
    new = deep_copy(STORED)
    own_spec = new["spec"]
    strategy.prepare_for_update(PODS, new, old, subresource="status")
    assert new["spec"] is own_spec  # equal: no copy needed
    # 1 == 1.0 == True in Python, not in JSON: the stored types win.
    new2 = deep_copy(STORED)
    new2["spec"]["containers"][0]["args"][1] = 1.0
    strategy.prepare_for_update(PODS, new2, old, subresource="status")
    assert orjson.dumps(new2["spec"]) == orjson.dumps(STORED["spec"])
    assert not containers(new2) & containers(old)


def test_status_write_keeps_the_stored_key_order() -> None:
    old = deep_copy(STORED)
    new = deep_copy(STORED)
    new["spec"] = dict(reversed(list(new["spec"].items())))
    strategy.prepare_for_update(PODS, new, old, subresource="status")
    assert orjson.dumps(new["spec"]) == orjson.dumps(STORED["spec"])


def test_main_resource_write_takes_status_from_storage_unshared() -> None:
    old = deep_copy(STORED)
    old["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    new = deep_copy(STORED)
    new["status"] = {"phase": "Failed"}
    strategy.prepare_for_update(PODS, new, old)
    assert new["status"] == old["status"]
    assert not containers(new) & containers(old)
    new["status"]["conditions"].clear()
    assert old["status"]["conditions"] == [{"type": "Ready", "status": "True"}]


def test_generation_still_bumps_on_a_spec_change() -> None:
    stored = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "generation": 3, "uid": "u"},
        "spec": {"replicas": 1},
        "status": {"replicas": 1},
    }
    new = deep_copy(stored)
    new["spec"]["replicas"] = 2
    new["metadata"]["generation"] = 99
    strategy.prepare_for_update(DEPLOYMENTS, new, stored)
    assert new["metadata"]["generation"] == 4
    assert not containers(new) & containers(stored)
