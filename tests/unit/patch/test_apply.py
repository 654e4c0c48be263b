"""Server-side apply: merge, ownership, pruning, conflicts and their upstream wording."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api import errors, schemas
from controlplane.api.patch import managed_fields as mf
from controlplane.api.patch.apply import InvalidApplyConfiguration, apply
from controlplane.api.patch.fieldpath import from_fields_v1, path_string

DEPLOYMENT = schemas.definition_for("apps", "v1", "Deployment")
CONFIGMAP = schemas.definition_for("", "v1", "ConfigMap")
T0, T1, T2, T3 = (f"2024-05-01T10:00:0{i}Z" for i in range(4))


def deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    }


def containers(*items: dict[str, Any]) -> dict[str, Any]:
    return {"template": {"spec": {"containers": list(items)}}}


def ssa(live: dict[str, Any] | None, cfg: dict[str, Any], manager: str, now: str = T0, **kw: Any) -> Any:
    kw.setdefault("force", False)
    kw.setdefault("schema", DEPLOYMENT)
    kw.setdefault("api_version", cfg.get("apiVersion", "apps/v1"))
    return apply(live, cfg, manager=manager, now=now, **kw)


def owners(obj: dict[str, Any]) -> dict[str, set[Any]]:
    return {e["manager"]: set(from_fields_v1(e["fieldsV1"])) for e in obj["metadata"]["managedFields"]}


def owned_strings(obj: dict[str, Any]) -> dict[str, set[str]]:
    return {m: {path_string(p) for p in fs} for m, fs in owners(obj).items()}


def test_create_returns_applied_object_with_apply_entry() -> None:
    cfg = deployment(replicas=2)
    cfg["metadata"]["labels"] = {"app": "web"}
    obj = ssa(None, cfg, "kubectl")
    assert obj["spec"] == {"replicas": 2}
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}}},
        }
    ]
    assert "managedFields" not in cfg["metadata"]  # inputs untouched


def test_two_appliers_own_disjoint_fields() -> None:
    obj = ssa(None, deployment(replicas=2), "a")
    obj = ssa(obj, deployment(minReadySeconds=5), "b", T1)
    assert obj["spec"] == {"replicas": 2, "minReadySeconds": 5}
    assert owned_strings(obj) == {"a": {".spec.replicas"}, "b": {".spec.minReadySeconds"}}


def test_conflict_with_updater_has_upstream_message_and_cause() -> None:
    obj = ssa(None, deployment(replicas=2), "kubectl")
    scaled = copy.deepcopy(obj)
    scaled["spec"]["replicas"] = 5
    scaled["metadata"]["managedFields"] = mf.update(
        obj, scaled, manager="kubectl-client-side-apply", api_version="apps/v1", schema=DEPLOYMENT, now=T1
    )
    with pytest.raises(errors.Conflict) as caught:
        ssa(scaled, deployment(replicas=3), "kubectl", T2)
    status = caught.value.to_status()
    assert status["code"] == 409
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    )
    assert status["details"] == {
        "causes": [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
                "field": ".spec.replicas",
            }
        ]
    }


def test_several_conflicts_are_grouped_by_manager() -> None:
    obj = ssa(None, deployment(replicas=2, minReadySeconds=1), "alpha")
    obj = ssa(obj, deployment(paused=False), "beta", T1)
    with pytest.raises(errors.Conflict) as caught:
        ssa(obj, deployment(replicas=3, minReadySeconds=2, paused=True), "gamma", T2)
    assert caught.value.message == (
        "Apply failed with 3 conflicts: "
        'conflicts with "alpha":\n- .spec.minReadySeconds\n- .spec.replicas\n'
        'conflicts with "beta":\n- .spec.paused'
    )
    assert [c.field for c in caught.value.causes] == [
        ".spec.minReadySeconds",
        ".spec.replicas",
        ".spec.paused",
    ]
    assert all(c.reason == "FieldManagerConflict" for c in caught.value.causes)


def test_force_transfers_ownership() -> None:
    obj = ssa(None, deployment(replicas=2, minReadySeconds=1), "a")
    obj = ssa(obj, deployment(replicas=7), "b", T1, force=True)
    assert obj["spec"]["replicas"] == 7
    assert owned_strings(obj) == {"a": {".spec.minReadySeconds"}, "b": {".spec.replicas"}}


def test_same_value_is_shared_without_conflict() -> None:
    obj = ssa(None, deployment(replicas=2), "a")
    obj = ssa(obj, deployment(replicas=2), "b", T1)
    assert owned_strings(obj) == {"a": {".spec.replicas"}, "b": {".spec.replicas"}}
    # Nothing changed, so the newcomer's entry carries no time (upstream's no-op apply).
    entry_b = next(e for e in obj["metadata"]["managedFields"] if e["manager"] == "b")
    assert "time" not in entry_b
    # A shared field survives one owner dropping it.
    obj = ssa(obj, deployment(minReadySeconds=3), "a", T2)
    assert obj["spec"] == {"replicas": 2, "minReadySeconds": 3}
    assert owned_strings(obj) == {"a": {".spec.minReadySeconds"}, "b": {".spec.replicas"}}


def test_omitted_field_is_removed_when_solely_owned() -> None:
    obj = ssa(None, deployment(replicas=2, minReadySeconds=4), "a")
    obj = ssa(obj, deployment(replicas=2), "a", T1)
    assert obj["spec"] == {"replicas": 2}
    assert owned_strings(obj) == {"a": {".spec.replicas"}}


def test_omitted_field_owned_by_updater_stays() -> None:
    obj = ssa(None, deployment(replicas=2, minReadySeconds=4), "a")
    edited = copy.deepcopy(obj)
    edited["spec"]["minReadySeconds"] = 9
    edited["metadata"]["managedFields"] = mf.update(
        obj, edited, manager="editor", api_version="apps/v1", schema=DEPLOYMENT, now=T1
    )
    obj = ssa(edited, deployment(replicas=2), "a", T2)
    assert obj["spec"] == {"replicas": 2, "minReadySeconds": 9}


def test_containers_merge_by_name_across_managers() -> None:
    obj = ssa(None, deployment(**containers({"name": "web", "image": "nginx:1"})), "a")
    obj = ssa(obj, deployment(**containers({"name": "sidecar", "image": "envoy:1"})), "b", T1)
    names = [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]]
    assert names == ["web", "sidecar"]
    # Each manager owns its own item; updating one item leaves the other alone.
    obj = ssa(obj, deployment(**containers({"name": "web", "image": "nginx:2"})), "a", T2)
    assert obj["spec"]["template"]["spec"]["containers"] == [
        {"name": "web", "image": "nginx:2"},
        {"name": "sidecar", "image": "envoy:1"},
    ]
    assert owned_strings(obj)["b"] == {
        '.spec.template.spec.containers[name="sidecar"]',
        '.spec.template.spec.containers[name="sidecar"].image',
        '.spec.template.spec.containers[name="sidecar"].name',
    }
    # Dropping its container removes only that item.
    obj = ssa(obj, deployment(), "b", T3)
    assert obj["spec"]["template"]["spec"]["containers"] == [{"name": "web", "image": "nginx:2"}]


def test_conflict_inside_a_shared_container() -> None:
    obj = ssa(None, deployment(**containers({"name": "web", "image": "nginx:1"})), "a")
    with pytest.raises(errors.Conflict) as caught:
        ssa(obj, deployment(**containers({"name": "web", "image": "nginx:2"})), "b", T1)
    assert caught.value.message == (
        'Apply failed with 1 conflict: conflict with "a": .spec.template.spec.containers[name="web"].image'
    )


def test_ports_key_defaults_protocol() -> None:
    port = {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}
    obj = ssa(None, deployment(**containers(port)), "a")
    live_port = copy.deepcopy(obj)
    live_port["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = "TCP"
    # A defaulted live item and an applied item without the field are the same item.
    obj = ssa(live_port, deployment(**containers(port)), "a", T1)
    assert obj["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP"}
    ]


def test_finalizers_are_a_set_across_managers() -> None:
    cfg_a = deployment()
    cfg_a["metadata"]["finalizers"] = ["a.example.com/f"]
    cfg_b = deployment()
    cfg_b["metadata"]["finalizers"] = ["b.example.com/f"]
    obj = ssa(None, cfg_a, "a")
    obj = ssa(obj, cfg_b, "b", T1)
    assert obj["metadata"]["finalizers"] == ["a.example.com/f", "b.example.com/f"]
    assert owned_strings(obj) == {
        "a": {'.metadata.finalizers[="a.example.com/f"]'},
        "b": {'.metadata.finalizers[="b.example.com/f"]'},
    }
    obj = ssa(obj, deployment(), "a", T2)
    assert obj["metadata"]["finalizers"] == ["b.example.com/f"]


def test_atomic_list_is_replaced_and_conflicts_as_a_whole() -> None:
    cfg = deployment(**containers({"name": "web", "image": "x", "args": ["a", "b"]}))
    obj = ssa(None, cfg, "a")
    cfg2 = deployment(**containers({"name": "web", "image": "x", "args": ["c"]}))
    obj = ssa(obj, cfg2, "a", T1)
    assert obj["spec"]["template"]["spec"]["containers"][0]["args"] == ["c"]
    with pytest.raises(errors.Conflict) as caught:
        ssa(obj, deployment(**containers({"name": "web", "args": ["d"]})), "b", T2)
    assert [c.field for c in caught.value.causes] == ['.spec.template.spec.containers[name="web"].args']


def test_labels_map_is_granular_and_selector_atomic() -> None:
    cfg = deployment(selector={"matchLabels": {"app": "web"}})
    cfg["metadata"]["labels"] = {"app": "web", "tier": "fe"}
    obj = ssa(None, cfg, "a")
    cfg2 = deployment(selector={"matchLabels": {"app": "web"}})
    cfg2["metadata"]["labels"] = {"app": "web"}
    obj = ssa(obj, cfg2, "a", T1)
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert owned_strings(obj)["a"] == {".metadata.labels.app", ".spec.selector"}
    # Dropping the last label removes the map altogether.
    obj = ssa(obj, deployment(selector={"matchLabels": {"app": "web"}}), "a", T2)
    assert "labels" not in obj["metadata"]


def test_status_is_merged_but_not_owned_on_main_resource() -> None:
    cfg = deployment(replicas=1)
    cfg["status"] = {"replicas": 1}
    obj = ssa(None, cfg, "a")
    assert owned_strings(obj) == {"a": {".spec.replicas"}}


def test_object_without_managed_fields_gets_before_first_apply_owner() -> None:
    live = deployment(replicas=2, minReadySeconds=3)
    live["metadata"]["uid"] = "u"
    with pytest.raises(errors.Conflict) as caught:
        ssa(live, deployment(replicas=4), "a", T1)
    assert caught.value.message == (
        'Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas'
    )
    obj = ssa(live, deployment(replicas=2), "a", T1)
    assert owned_strings(obj) == {
        "before-first-apply": {".spec.replicas", ".spec.minReadySeconds"},
        "a": {".spec.replicas"},
    }


def test_identity_metadata_is_kept_and_never_owned() -> None:
    live = ssa(None, deployment(replicas=1), "a")
    live["metadata"].update(uid="u", resourceVersion="3", creationTimestamp=T0, generation=1)
    obj = ssa(live, deployment(replicas=2), "a", T1)
    assert obj["metadata"]["uid"] == "u"
    assert obj["metadata"]["resourceVersion"] == "3"
    assert owned_strings(obj) == {"a": {".spec.replicas"}}


def test_rejects_managed_fields_and_wrong_version() -> None:
    cfg = deployment()
    cfg["metadata"]["managedFields"] = []
    with pytest.raises(errors.BadRequest, match=r"^metadata.managedFields must be nil$"):
        ssa(None, cfg, "a")
    with pytest.raises(errors.BadRequest) as caught:
        ssa(None, deployment(), "a", api_version="apps/v1beta1")
    assert caught.value.message == (
        "Incorrect version specified in apply patch. Specified patch version: apps/v1, expected: apps/v1beta1"
    )


def test_invalid_configurations_use_upstream_wording() -> None:
    dup = deployment(**containers({"name": "a", "image": "x"}, {"name": "a", "image": "y"}))
    with pytest.raises(InvalidApplyConfiguration) as caught:
        ssa(None, dup, "m")
    assert caught.value.message == (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
        '.spec.template.spec.containers: duplicate entries for key [name="a"]'
    )
    status = caught.value.to_status()
    assert status["code"] == 500
    assert "reason" not in status

    nokey = deployment(**containers({"image": "x"}))
    nokey["spec"]["bogus"] = 1
    with pytest.raises(InvalidApplyConfiguration) as caught:
        ssa(None, nokey, "m")
    assert caught.value.message == (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): errors:\n"
        "  .spec.template.spec.containers: element 0: associative list with keys has an element "
        'that omits key field "name" (and doesn\'t have default value)\n'
        "  .spec.bogus: field not declared in schema"
    )


def test_schemaless_apply_merges_maps_and_replaces_lists() -> None:
    base = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}}
    obj = apply(
        None,
        {**base, "spec": {"m": {"a": 1}, "l": [1, 2]}},
        manager="a",
        force=False,
        api_version="example.com/v1",
        schema=None,
        now=T0,
    )
    obj = apply(
        obj,
        {**base, "spec": {"m": {"b": 2}, "l": [3]}},
        manager="b",
        force=True,
        api_version="example.com/v1",
        schema=None,
        now=T1,
    )
    assert obj["spec"] == {"m": {"a": 1, "b": 2}, "l": [3]}
    assert owned_strings(obj) == {"a": {".spec.m", ".spec.m.a"}, "b": {".spec.m", ".spec.m.b", ".spec.l"}}


# properties over schema-less objects

_keys = st.sampled_from(["a", "b", "c", "d"])
_leaves = st.one_of(st.integers(-3, 3), st.sampled_from(["x", "y", ""]), st.booleans())
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=8,
)
_specs = st.dictionaries(_keys, _values, max_size=4)
BASE = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}}


def _sa(live: dict[str, Any] | None, spec: dict[str, Any], manager: str, now: str, force: bool = True) -> Any:
    return apply(
        live,
        {**copy.deepcopy(BASE), "spec": copy.deepcopy(spec)},
        manager=manager,
        force=force,
        api_version="example.com/v1",
        schema=None,
        now=now,
    )


def _contains(whole: Any, part: Any) -> bool:
    if isinstance(part, dict) and part:
        return isinstance(whole, dict) and all(k in whole and _contains(whole[k], v) for k, v in part.items())
    if isinstance(part, dict):
        return isinstance(whole, dict)
    return bool(whole == part) and type(whole) is type(part)


@settings(deadline=None, max_examples=60)
@given(_specs, _specs)
def test_applying_twice_is_idempotent(first: dict[str, Any], second: dict[str, Any]) -> None:
    live = _sa(None, first, "other", T0)
    once = _sa(live, second, "me", T1)
    twice = _sa(once, second, "me", T2)
    assert twice == once  # same object and the same managedFields, times included


@settings(deadline=None, max_examples=60)
@given(_specs, _specs)
def test_schemaless_applied_values_are_present(first: dict[str, Any], second: dict[str, Any]) -> None:
    live = _sa(None, first, "other", T0)
    result = _sa(live, second, "me", T1)
    assert _contains(result["spec"], second)


def _leaf_paths(value: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for key, val in value.items():
        if isinstance(val, dict) and val:
            out.extend(_leaf_paths(val, (*prefix, key)))
        else:
            out.append((*prefix, key))
    return out


def _without(value: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(value)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


@settings(deadline=None, max_examples=60)
@given(_specs.filter(bool), st.data())
def test_omitting_a_solely_owned_field_removes_exactly_it(spec: dict[str, Any], data: st.DataObject) -> None:
    spec = {**spec, "keep": 1}  # never dropped, so the spec itself never empties
    live = _sa(None, spec, "me", T0, force=False)
    path = data.draw(st.sampled_from([p for p in _leaf_paths(spec) if p != ("keep",)]))
    trimmed = _without(spec, path)
    result = _sa(live, trimmed, "me", T1, force=False)
    assert result["spec"] == trimmed
    assert set(owners(result)) == {"me"}
    assert owners(result)["me"] == mf.fields_of(result, None)


_containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["a", "b", "c"]), "image": st.sampled_from(["x:1", "x:2"])},
        optional={
            "args": st.lists(st.sampled_from(["-v", "-q"]), max_size=2),
            "ports": st.lists(
                st.fixed_dictionaries({"containerPort": st.sampled_from([80, 443])}),
                max_size=2,
                unique_by=str,
            ),
        },
    ),
    max_size=3,
    unique_by=lambda c: c["name"],
)
_labels = st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["x", "y"]), max_size=2)


def _typed_config(
    items: list[dict[str, Any]], labels: dict[str, str], replicas: int | None
) -> dict[str, Any]:
    spec: dict[str, Any] = containers(*items) if items else {}
    if replicas is not None:
        spec["replicas"] = replicas
    cfg = deployment(**spec)
    if labels:
        cfg["metadata"]["labels"] = labels
    return cfg


_typed_configs = st.builds(_typed_config, _containers, _labels, st.one_of(st.none(), st.integers(0, 3)))


@settings(deadline=None, max_examples=40)
@given(_typed_configs, _typed_configs)
def test_typed_apply_is_idempotent_and_keeps_applied_values(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    live = ssa(None, first, "other")
    once = ssa(live, second, "me", T1, force=True)
    assert ssa(once, second, "me", T2) == once
    assert _contains(once["spec"], {k: v for k, v in second["spec"].items() if k != "template"})
    applied_items = {
        c["name"]: c for c in second["spec"].get("template", {}).get("spec", {}).get("containers", [])
    }
    live_items = {
        c["name"]: c for c in once["spec"].get("template", {}).get("spec", {}).get("containers", [])
    }
    for name, item in applied_items.items():
        assert live_items[name]["image"] == item["image"]
        if "args" in item:
            assert live_items[name]["args"] == item["args"]
