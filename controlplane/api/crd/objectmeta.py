"""Embedded resources (`x-kubernetes-embedded-resource`): apiVersion, kind and metadata are
checked as upstream's `pkg/apiserver/schema/objectmeta/validation.go` does.
"""

from __future__ import annotations

import json
from typing import Any

from controlplane.api import names
from controlplane.api.crd import fielderrors as fe
from controlplane.api.crd import nodes, paths
from controlplane.api.errors import Cause

__all__ = ["parse_group_version_error", "validate_embedded"]

Schema = dict[str, Any]


def parse_group_version_error(text: str) -> str:
    """`schema.ParseGroupVersion`'s error, or "" when it parses."""
    if text.count("/") > 1:
        return f"unexpected GroupVersion string: {text}"
    return ""


def validate_embedded(pth: str, obj: Any, s: Schema | None, is_resource_root: bool) -> list[Cause]:
    out: list[Cause] = []
    if is_resource_root:
        root = dict(s or {})
        root["x-kubernetes-embedded-resource"] = True
        s = root
    _walk(pth, obj, s, out)
    return out


def _walk(pth: str, x: Any, s: Schema | None, out: list[Cause]) -> None:
    if s is None:
        return
    if isinstance(x, dict):
        if s.get("x-kubernetes-embedded-resource"):
            _embedded(pth, x, out)
        props = nodes.properties(s)
        _, extra = nodes.additional(s)
        for key, value in x.items():
            if key in props:
                _walk(paths.child(pth, key), value, props[key], out)
            elif extra is not None:
                _walk(paths.key(pth, key), value, extra, out)
    elif isinstance(x, list):
        item_schema = nodes.items(s)
        for i, value in enumerate(x):
            _walk(paths.index(pth, i), value, item_schema, out)


def _embedded(pth: str, x: dict[str, Any], out: list[Cause]) -> None:
    if "apiVersion" not in x:
        out.append(fe.required(paths.child(pth, "apiVersion")))
    if "kind" not in x:
        out.append(fe.required(paths.child(pth, "kind")))
    for key, value in x.items():
        if key == "apiVersion":
            path = paths.child(pth, "apiVersion")
            if not isinstance(value, str):
                out.append(fe.invalid(path, value, "must be a string"))
            elif not value:
                out.append(fe.invalid(path, value, "must not be empty"))
            elif err := parse_group_version_error(value):
                out.append(fe.invalid(path, value, err))
        elif key == "kind":
            path = paths.child(pth, "kind")
            if not isinstance(value, str):
                out.append(fe.invalid(path, value, "must be a string"))
            elif not value:
                out.append(fe.invalid(path, value, "must not be empty"))
            elif errs := names.is_dns1035_label(value.lower()):
                out.append(
                    fe.invalid(
                        path, value, "may have mixed case, but should otherwise match: " + ",".join(errs)
                    )
                )
        elif key == "metadata":
            _metadata(paths.child(pth, "metadata"), value, out)


def _metadata(path: str, meta: Any, out: list[Cause]) -> None:
    if not isinstance(meta, dict):
        out.append(fe.invalid(path, meta, "must be an object"))
        return
    name = meta.get("name") or "fakename"
    generate_name = meta.get("generateName") or ""
    if not isinstance(name, str) or not isinstance(generate_name, str):
        out.append(fe.invalid(path, meta, "name and generateName must be strings"))
        return
    if generate_name:
        for msg in names.name_is_path_segment(generate_name, True):
            out.append(fe.invalid(paths.child(path, "generateName"), generate_name, msg))
    for msg in names.name_is_path_segment(name, False):
        out.append(fe.invalid(paths.child(path, "name"), name, msg))
    namespace = meta.get("namespace") or ""
    if isinstance(namespace, str) and namespace:
        for msg in names.is_dns1123_label(namespace):
            out.append(fe.invalid(paths.child(path, "namespace"), namespace, msg))
    generation = meta.get("generation")
    if isinstance(generation, int) and not isinstance(generation, bool) and generation < 0:
        out.append(
            fe.invalid(paths.child(path, "generation"), generation, "must be greater than or equal to 0")
        )
    labels = meta.get("labels")
    if isinstance(labels, dict):
        for key, value in labels.items():
            for msg in names.is_qualified_name(str(key)):
                out.append(fe.invalid(paths.child(path, "labels"), key, msg))
            if isinstance(value, str):
                for msg in names.is_valid_label_value(value):
                    out.append(fe.invalid(paths.child(path, "labels"), value, msg))
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        total = 0
        for key, value in annotations.items():
            for msg in names.is_qualified_name(str(key).lower()):
                out.append(fe.invalid(paths.child(path, "annotations"), key, msg))
            total += len(str(key).encode()) + len(json.dumps(value).encode())
        if total > 256 * 1024:
            out.append(fe.too_long(paths.child(path, "annotations"), 256 * 1024))
    finalizers = meta.get("finalizers")
    if isinstance(finalizers, list):
        for finalizer in finalizers:
            for msg in names.is_qualified_name(str(finalizer)):
                out.append(fe.invalid(paths.child(path, "finalizers"), finalizer, msg))
