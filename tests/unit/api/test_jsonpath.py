"""The JSONPath subset used by CRD printer columns, and Go's text for results."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api.jsonpath import JSONPathError, compile_path, find, go_float, go_json, go_text

DOC: dict[str, Any] = {
    "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}},
    "spec": {
        "replicas": 3,
        "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}],
    },
    "status": {
        "conditions": [
            {"type": "Progressing", "status": "True", "count": 1},
            {"type": "Ready", "status": "False", "count": 4},
        ],
    },
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".metadata.name", ["web"]),
        ("{.metadata.name}", ["web"]),
        ("$.metadata.name", ["web"]),
        (".spec.replicas", [3]),
        (".spec.containers[0].image", ["nginx"]),
        (".spec.containers[-1].name", ["b"]),
        (".spec.containers[*].name", ["a", "b"]),
        (".spec.containers[0:1].name", ["a"]),
        (".spec.containers[0,1].image", ["nginx", "redis"]),
        ('.status.conditions[?(@.type=="Ready")].status', ["False"]),
        (".status.conditions[?(@.type=='Progressing')].status", ["True"]),
        (".status.conditions[?(@.type != 'Ready')].type", ["Progressing"]),
        (".status.conditions[?(@.count > 2)].type", ["Ready"]),
        (".status.conditions[?(@.count<=1)].type", ["Progressing"]),
        (".status.conditions[?(@.status)].type", ["Progressing", "Ready"]),
        (".metadata.labels['app.kubernetes.io/name']", ["web"]),
        ("..image", ["nginx", "redis"]),
        (".spec.*", [3, DOC["spec"]["containers"]]),
        (".metadata.missing", []),
        (".spec.containers[5].name", []),
        (".spec.replicas.deeper", []),
        ('.status.conditions[?(@.type=="Gone")].status', []),
    ],
)
def test_find(path: str, expected: list[Any]) -> None:
    assert find(path, DOC) == expected


@pytest.mark.parametrize(
    "path", ["metadata.name", ".a[", ".a[x]", ".a[?(@.b == )]", ".a['b", ".a[1:2:0]", "..", ".a..."]
)
def test_invalid_paths_raise(path: str) -> None:
    with pytest.raises(JSONPathError):
        compile_path(path)


def test_filter_comparing_incompatible_types_is_an_error() -> None:
    with pytest.raises(JSONPathError):
        find(".status.conditions[?(@.count == 'x')].type", DOC)


def test_filter_on_non_list_selects_nothing() -> None:
    assert find(".metadata[?(@.name)]", DOC) == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.0, "3"),
        (1.5, "1.5"),
        (-0.25, "-0.25"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1e21, "1e+21"),
        (0.0, "0"),
    ],
)
def test_go_float_matches_fmt_sprint(value: float, text: str) -> None:
    assert go_float(value) == text


def test_go_text_and_json() -> None:
    assert go_text("x") == "x"
    assert go_text(True) == "true"
    assert go_text(7) == "7"
    assert go_text({"b": 1, "a": [1.0, "<&>"]}) == '{"a":[1,"\\u003c\\u0026\\u003e"],"b":1}'
    assert go_json(1e21) == "1e+21"
    assert go_json(0.000001) == "0.000001"
    assert go_json(1e-7) == "1e-7"
    assert go_json(None) == "null"
