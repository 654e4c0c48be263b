"""Response shapes chosen by the Accept header: the object itself, a `meta.k8s.io/v1 Table`, or
`PartialObjectMetadata`, as upstream's content negotiation for `as=Table` / `as=PartialObjectMetadata`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from controlplane.api import errors, tables
from controlplane.api.resources import ResourceInfo

__all__ = ["Output", "negotiate", "partial_metadata", "table"]

Shape = Literal["object", "table", "partial"]


@dataclass(frozen=True)
class Output:
    shape: Shape
    include_object: str = "Metadata"  # for tables: None | Metadata | Object


def _params(part: str) -> tuple[str, dict[str, str]]:
    pieces = [p.strip() for p in part.split(";")]
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        if "=" in piece:
            key, _, value = piece.partition("=")
            params[key.strip().lower()] = value.strip()
    return pieces[0].lower(), params


def negotiate(accept: str | None, include_object: str | None) -> Output:
    """Pick the first acceptable representation in the client's order (kubectl lists Table first
    and plain JSON as fallback)."""
    if not accept:
        return Output("object")
    for part in accept.split(","):
        media, params = _params(part)
        as_ = params.get("as", "")
        if not as_:
            if media in ("application/json", "*/*", "application/*", "application/yaml"):
                return Output("object")
            if media == "application/vnd.kubernetes.protobuf":
                continue
            continue
        if params.get("g") != "meta.k8s.io" or params.get("v") not in ("v1", "v1beta1"):
            continue
        if as_ == "Table":
            mode = include_object or "Metadata"
            if mode not in ("None", "Metadata", "Object"):
                raise errors.BadRequest(message=f'includeObject: unsupported value "{mode}"')
            return Output("table", mode)
        if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            return Output("partial")
    if any(_params(p)[0] == "application/vnd.kubernetes.protobuf" for p in accept.split(",")):
        # Typed client-go sends protobuf first and JSON second; a lone protobuf accept still gets JSON
        # (we do not speak protobuf for objects; client-go accepts JSON replies).
        return Output("object")
    raise errors.NotAcceptable(
        message="only the following media types are accepted: application/json, application/yaml"
    )


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(
    info: ResourceInfo,
    objects: list[dict[str, Any]],
    *,
    now: datetime,
    include_object: str,
    list_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    found = info.extra.get("additionalPrinterColumns")
    printer_columns: list[dict[str, Any]] | None = found if isinstance(found, list) else None
    columns = tables.columns(info.group, info.plural, printer_columns=printer_columns)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {
            "cells": tables.cells(info.group, info.plural, obj, now=now, printer_columns=printer_columns),
        }
        if include_object == "Object":
            row["object"] = obj
        elif include_object == "Metadata":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": columns,
        "rows": rows,
    }
