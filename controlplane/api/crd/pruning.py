"""Drop fields a structural schema does not specify (`pkg/apiserver/schema/pruning`).

At the resource root and in `x-kubernetes-embedded-resource` objects, `apiVersion` and `kind`
(strings) and `metadata` are kept; the root's metadata is the API server's business, an
embedded resource's metadata loses fields `ObjectMeta` does not have. The removed paths come
back sorted, without a leading dot (`spec.foo`, `spec.items[0].bar`), as upstream reports them in
`unknown field "spec.foo"`.
"""

from __future__ import annotations

from typing import Any

from controlplane.api.crd import nodes

__all__ = ["OBJECT_META_FIELDS", "prune"]

Schema = dict[str, Any]

OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_META = frozenset({"apiVersion", "kind", "metadata"})


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def prune(obj: Any, schema: Schema | None, is_resource_root: bool = True) -> list[str]:
    out: list[str] = []
    if is_resource_root:
        root = dict(schema or {})
        root["x-kubernetes-embedded-resource"] = True
        _prune(obj, root, "", out, root=True)
    else:
        _prune(obj, schema, "", out, root=False)
    return sorted(out)


def _prune_meta(meta: dict[str, Any], path: str, out: list[str]) -> None:
    for key in list(meta):
        if key not in OBJECT_META_FIELDS:
            out.append(_child(path, key))
            del meta[key]


def _keep_meta(x: dict[str, Any], key: str, value: Any, path: str, out: list[str], root: bool) -> bool:
    if key in {"apiVersion", "kind"}:
        return isinstance(value, str)
    if key == "metadata" and isinstance(value, dict):
        if not root:
            _prune_meta(value, _child(path, key), out)
        return True
    return False


def _prune(x: Any, s: Schema | None, path: str, out: list[str], root: bool = False) -> None:
    if s is not None and s.get("x-kubernetes-preserve-unknown-fields"):
        _skip_prune(x, s, path, out, root)
        return
    if isinstance(x, dict):
        if s is None:
            for key in list(x):
                out.append(_child(path, key))
                del x[key]
            return
        embedded = bool(s.get("x-kubernetes-embedded-resource"))
        props = nodes.properties(s)
        has_extra, extra = nodes.additional(s)
        for key in list(x):
            value = x[key]
            if embedded and key in _META and _keep_meta(x, key, value, path, out, root):
                continue
            if key in props:
                _prune(value, props[key], _child(path, key), out)
            elif has_extra:
                _prune(value, extra, _child(path, key), out)
            else:
                out.append(_child(path, key))
                del x[key]
    elif isinstance(x, list):
        item_schema = nodes.items(s)
        for i, value in enumerate(x):
            _prune(value, item_schema, f"{path}[{i}]" if s is not None else path, out)


def _skip_prune(x: Any, s: Schema, path: str, out: list[str], root: bool) -> None:
    if isinstance(x, dict):
        embedded = bool(s.get("x-kubernetes-embedded-resource"))
        props = nodes.properties(s)
        has_extra, extra = nodes.additional(s)
        for key, value in list(x.items()):
            if embedded and key in _META:
                if key == "metadata" and isinstance(value, dict) and not root:
                    _prune_meta(value, _child(path, key), out)
                continue
            if key in props:
                _prune(value, props[key], _child(path, key), out)
            elif has_extra and extra is not None:
                _prune(value, extra, _child(path, key), out)
    elif isinstance(x, list):
        item_schema = nodes.items(s)
        if item_schema is not None:
            for i, value in enumerate(x):
                _prune(value, item_schema, f"{path}[{i}]", out)
