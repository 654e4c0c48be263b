"""CustomResourceDefinitions against a real `pinnace server`, driven by the real kubectl dispatcher.

Each test installs CRDs of a group of its own, so tests share the session server without seeing
each other's names. Schema-engine behaviour (422 for invalid objects, defaults, pruning under
Ignore) is tested only when `controlplane.api.crd` is installed.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.kubectl_helpers import Kubectl, eventually, headers, parse_table, row_named

pytestmark = pytest.mark.kubectl


@pytest.fixture
def kubectl(kube_env: dict[str, str]) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("no kubectl dispatcher on PATH")
    return Kubectl(binary, kube_env)


@pytest.fixture
def group() -> str:
    return f"g{uuid.uuid4().hex[:8]}.example.com"


@pytest.fixture
def cleanup(kubectl: Kubectl) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        kubectl.run("delete", "crd", name, "--ignore-not-found", "--wait=false", check=False)


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "description": "What the widget should be.",
            "properties": {
                "size": {"type": "integer", "description": "How big the widget is.", "minimum": 1},
                "color": {"type": "string", "enum": ["red", "blue"]},
                "replicas": {"type": "integer", "default": 1},
            },
        },
        "status": {
            "type": "object",
            "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}},
        },
    },
}


def widget_crd(group: str, **version_overrides: Any) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": SCHEMA},
        "subresources": {
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        "additionalPrinterColumns": [
            {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
            {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1},
        ],
    }
    version.update(version_overrides)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "shortNames": [f"wd{group[1:5]}"],
                "categories": [f"cat{group[1:5]}"],
            },
            "versions": [version],
        },
    }


def apply(kubectl: Kubectl, manifest: dict[str, Any], *extra: str, check: bool = True) -> Any:
    return kubectl.run("apply", "-f", "-", *extra, stdin=json.dumps(manifest), check=check)


def install(kubectl: Kubectl, cleanup: list[str], crd: dict[str, Any]) -> None:
    cleanup.append(crd["metadata"]["name"])
    apply(kubectl, crd)


def widget(group: str, name: str, version: str = "v1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{group}/{version}", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def test_a_new_crd_is_served_within_a_second(kubectl: Kubectl, group: str, cleanup: list[str]) -> None:
    install(kubectl, cleanup, widget_crd(group))
    # Right after the create returns: kubectl refreshes discovery and finds the new resource.
    started = time.monotonic()
    result = kubectl.run("get", f"widgets.{group}", "-n", "default")
    assert time.monotonic() - started < 1.0, "the new resource was not served within a second"
    assert "No resources found" in result.stderr
    crd = kubectl.json("get", "crd", f"widgets.{group}")
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["NamesAccepted"]["reason"] == "NoConflicts"
    assert conditions["NamesAccepted"]["status"] == "True"
    assert conditions["Established"]["reason"] == "InitialNamesAccepted"
    assert conditions["Established"]["status"] == "True"
    assert crd["status"]["storedVersions"] == ["v1"]
    assert crd["status"]["acceptedNames"]["kind"] == "Widget"
    assert crd["spec"]["conversion"] == {"strategy": "None"}


def test_explain_printer_columns_short_names_and_categories(
    kubectl: Kubectl, group: str, cleanup: list[str]
) -> None:
    install(kubectl, cleanup, widget_crd(group))
    explained = kubectl.run("explain", f"widgets.{group}.spec.size").stdout
    assert "How big the widget is." in explained
    apply(kubectl, widget(group, "w1", size=3, color="red"), "-n", "default")
    short = f"wd{group[1:5]}"
    table = kubectl.run("get", short, "-n", "default").stdout
    assert headers(table) == ["NAME", "SIZE"]
    assert row_named(parse_table(table), "w1")["SIZE"] == "3"
    wide = kubectl.run("get", f"widgets.{group}", "-n", "default", "-o", "wide").stdout
    assert headers(wide) == ["NAME", "SIZE", "COLOR"]
    assert row_named(parse_table(wide), "w1")["COLOR"] == "red"
    by_category = kubectl.run("get", f"cat{group[1:5]}", "-n", "default").stdout
    assert row_named(parse_table(by_category), "w1")["SIZE"] == "3"  # one kind: no type prefix
    kubectl.run("delete", short, "w1", "-n", "default")


def test_verbs_status_and_scale_on_custom_objects(kubectl: Kubectl, group: str, cleanup: list[str]) -> None:
    install(kubectl, cleanup, widget_crd(group))
    resource = f"widgets.{group}"
    ns = ("-n", "default")
    apply(kubectl, widget(group, "w2", size=1), *ns)
    kubectl.run("patch", resource, "w2", *ns, "--type=merge", "-p", '{"spec":{"size":2}}')
    kubectl.run(
        "patch", resource, "w2", *ns, "--type=json", "-p", '[{"op":"replace","path":"/spec/size","value":4}]'
    )
    smp = kubectl.run("patch", resource, "w2", *ns, "-p", '{"spec":{"size":5}}', check=False)
    assert smp.returncode != 0
    assert "application/strategic-merge-patch+json is not supported" in smp.stderr
    kubectl.run(
        "patch", resource, "w2", *ns, "--subresource=status", "--type=merge", "-p",
        '{"status":{"replicas":1,"selector":"app=w2"}}',
    )  # fmt: skip
    kubectl.run("scale", resource, "w2", *ns, "--replicas=3")
    obj = kubectl.json("get", resource, "w2", *ns)
    assert obj["spec"]["size"] == 4
    assert obj["spec"]["replicas"] == 3
    assert obj["status"] == {"replicas": 1, "selector": "app=w2"}
    assert obj["metadata"]["generation"] == 4  # create, merge, json, scale: spec; status did not count
    scale = json.loads(
        kubectl.run("get", "--raw", f"/apis/{group}/v1/namespaces/default/widgets/w2/scale").stdout
    )
    assert scale["spec"] == {"replicas": 3}
    assert scale["status"] == {"replicas": 1, "selector": "app=w2"}
    applied = widget(group, "w2", size=6)
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", "-", *ns, stdin=json.dumps(applied))
    assert kubectl.json("get", resource, "w2", *ns)["spec"]["size"] == 6
    listed = kubectl.json("get", resource, *ns, "-l", "missing!=x", "--chunk-size=1")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w2"]
    kubectl.run("delete", resource, "w2", *ns)
    assert kubectl.run("get", resource, "w2", *ns, check=False).returncode != 0


def test_unknown_fields_strict_and_warn(kubectl: Kubectl, group: str, cleanup: list[str]) -> None:
    install(kubectl, cleanup, widget_crd(group))
    bad = widget(group, "w3", size=1, foo="bar")
    strict = kubectl.run(
        "create", "--validate=strict", "-f", "-", "-n", "default", stdin=json.dumps(bad), check=False
    )
    assert strict.returncode != 0
    assert 'unknown field "spec.foo"' in strict.stderr
    assert kubectl.run("get", f"widgets.{group}", "w3", "-n", "default", check=False).returncode != 0
    warned = kubectl.run("create", "--validate=warn", "-f", "-", "-n", "default", stdin=json.dumps(bad))
    assert 'unknown field "spec.foo"' in warned.stderr


def test_invalid_objects_are_refused_and_not_stored(kubectl: Kubectl, group: str, cleanup: list[str]) -> None:
    install(kubectl, cleanup, widget_crd(group))
    result = apply(kubectl, widget(group, "w4", size=0, color="green"), "-n", "default", check=False)
    assert result.returncode != 0
    assert 'The Widget "w4" is invalid' in result.stderr
    assert (
        "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1" in result.stderr
    )
    assert 'spec.color: Unsupported value: "green": supported values: "red", "blue"' in result.stderr
    assert kubectl.run("get", f"widgets.{group}", "w4", "-n", "default", check=False).returncode != 0
    apply(kubectl, widget(group, "w5", size=1), "-n", "default")
    assert kubectl.json("get", f"widgets.{group}", "w5", "-n", "default")["spec"]["replicas"] == 1


def test_several_versions_with_conversion_none(kubectl: Kubectl, group: str, cleanup: list[str]) -> None:
    crd = widget_crd(group)
    v1 = crd["spec"]["versions"][0]
    crd["spec"]["versions"] = [
        {"name": "v1beta1", "served": True, "storage": False, "schema": {"openAPIV3Schema": SCHEMA}},
        v1,
    ]
    install(kubectl, cleanup, crd)
    apply(kubectl, widget(group, "old", version="v1beta1", size=1), "-n", "default")
    as_v1 = kubectl.json("get", f"widgets.v1.{group}", "old", "-n", "default")
    assert as_v1["apiVersion"] == f"{group}/v1"
    as_beta = json.loads(
        kubectl.run("get", "--raw", f"/apis/{group}/v1beta1/namespaces/default/widgets/old").stdout
    )
    assert as_beta["apiVersion"] == f"{group}/v1beta1"
    api_group = json.loads(kubectl.run("get", "--raw", f"/apis/{group}").stdout)
    assert api_group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in api_group["versions"]] == ["v1", "v1beta1"]


def test_updating_a_crd_adds_a_column_live(kubectl: Kubectl, group: str, cleanup: list[str]) -> None:
    crd = widget_crd(group)
    install(kubectl, cleanup, crd)
    apply(kubectl, widget(group, "w6", size=2, color="blue"), "-n", "default")
    crd["spec"]["versions"][0]["additionalPrinterColumns"].append(
        {"name": "Tint", "type": "string", "jsonPath": ".spec.color"}
    )
    apply(kubectl, crd)

    def has_column() -> bool:
        table = kubectl.run("get", f"widgets.{group}", "-n", "default").stdout
        return headers(table) == ["NAME", "SIZE", "TINT"]

    eventually(has_column, timeout=5, what="the new printer column")


def test_a_name_conflict_leaves_names_not_accepted(kubectl: Kubectl, group: str, cleanup: list[str]) -> None:
    install(kubectl, cleanup, widget_crd(group))
    other = widget_crd(group)
    other["metadata"]["name"] = f"gadgets.{group}"
    other["spec"]["names"] = {"plural": "gadgets", "kind": "Gadget", "shortNames": [f"wd{group[1:5]}"]}
    install(kubectl, cleanup, other)

    def refused() -> bool:
        crd = kubectl.json("get", "crd", f"gadgets.{group}")
        conditions = {c["type"]: c for c in crd.get("status", {}).get("conditions", [])}
        return conditions.get("NamesAccepted", {}).get("reason") == "ShortNamesConflict"

    eventually(refused, timeout=5, what="NamesAccepted=False")
    crd = kubectl.json("get", "crd", f"gadgets.{group}")
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["NamesAccepted"]["status"] == "False"
    assert conditions["NamesAccepted"]["message"] == f'"wd{group[1:5]}" is already in use'
    assert conditions["Established"]["reason"] == "NotAccepted"
    assert kubectl.run("get", f"gadgets.{group}", check=False).returncode != 0


def test_an_invalid_crd_is_refused(kubectl: Kubectl, group: str) -> None:
    crd = widget_crd(group)
    crd["spec"]["versions"][0]["storage"] = False
    result = apply(kubectl, crd, check=False)
    assert result.returncode != 0
    assert f'The CustomResourceDefinition "widgets.{group}" is invalid' in result.stderr
    assert "must have exactly one version marked as storage version" in result.stderr


def test_deleting_a_crd_deletes_its_objects_first(kubectl: Kubectl, group: str, cleanup: list[str]) -> None:
    install(kubectl, cleanup, widget_crd(group))
    kubectl.run("create", "namespace", f"ns-{group[:9]}")
    apply(kubectl, widget(group, "kept"), "-n", "default")
    held = widget(group, "held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    apply(kubectl, held, "-n", f"ns-{group[:9]}")
    kubectl.run("delete", "crd", f"widgets.{group}", "--wait=false")

    def terminating() -> bool:
        crd = kubectl.json("get", "crd", f"widgets.{group}")
        conditions = {c["type"]: c for c in crd["status"]["conditions"]}
        return conditions.get("Terminating", {}).get("reason") == "InstanceDeletionInProgress"

    eventually(terminating, timeout=5, what="Terminating condition")
    assert kubectl.run("get", f"widgets.{group}", "kept", "-n", "default", check=False).returncode != 0
    refused = apply(kubectl, widget(group, "new"), "-n", "default", check=False)
    assert "create not allowed while custom resource definition is terminating" in refused.stderr
    kubectl.run(
        "patch", f"widgets.{group}", "held", "-n", f"ns-{group[:9]}", "--type=merge", "-p",
        '{"metadata":{"finalizers":null}}',
    )  # fmt: skip

    def gone() -> bool:
        return kubectl.run("get", "crd", f"widgets.{group}", check=False).returncode != 0

    eventually(gone, timeout=5, what="the CRD to go")
    kubectl.run("delete", "namespace", f"ns-{group[:9]}", "--wait=false")


def test_unknown_fields_are_pruned_silently_under_ignore(
    kubectl: Kubectl, group: str, cleanup: list[str]
) -> None:
    install(kubectl, cleanup, widget_crd(group))
    ignored = kubectl.run(
        "create",
        "--validate=false",
        "-f",
        "-",
        "-n",
        "default",
        stdin=json.dumps(widget(group, "w8", foo="x")),
    )
    assert "unknown field" not in ignored.stderr
    assert kubectl.json("get", f"widgets.{group}", "w8", "-n", "default")["spec"] == {"replicas": 1}
