"""Custom resources: registry entries from a CRD, their schema steps and version conversion.

Upstream's `customresource_handler.go` builds one serving entry per served version (accepted
names, scope, subresources, printer columns, the compiled structural schema); the custom resource
strategy prunes, defaults and validates against that version's schema. Objects are stored in the
storage version and converted on every read and write (strategy None rewrites apiVersion; Webhook
calls `controlplane.apiserver.conversion.convert_objects`).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

from controlplane.api import errors
from controlplane.api.crd.apply_schema import apply_schema
from controlplane.api.resources import (
    SCALE_SUBRESOURCE,
    STATUS_SUBRESOURCE,
    ResourceInfo,
    Subresource,
)
from controlplane.apiserver.crd import definition

__all__ = [
    "CompiledSchema",
    "default",
    "needs_webhook",
    "prune",
    "resource_infos",
    "rewrite_version",
    "validate",
]

log = logging.getLogger("pinnace.apiserver.crd")

Obj = dict[str, Any]


class CompiledSchema(Protocol):
    """The schema engine's `CustomResourceSchema` (controlplane.api.crd)."""

    def prune(self, obj: Obj) -> list[str]: ...

    def default(self, obj: Obj) -> None: ...

    def validate(self, obj: Obj, old: Obj | None) -> list[errors.Cause]: ...


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _compile(schema: Obj) -> CompiledSchema | None:
    try:
        module = importlib.import_module("controlplane.api.crd")
    except ImportError:
        return None
    factory = getattr(module, "CustomResourceSchema", None)
    if factory is None:
        return None
    try:
        compiled: CompiledSchema = factory(schema)
    except Exception:  # a schema the engine refuses serves unvalidated rather than not at all
        log.exception("could not compile a CRD schema")
        return None
    return compiled


def resource_infos(crd: Obj) -> list[ResourceInfo]:
    """One entry per served version, with the accepted names; none until it is Established."""
    if not definition.is_condition_true(crd, "Established"):
        return []
    spec = _d(crd.get("spec"))
    accepted = _d(_d(crd.get("status")).get("acceptedNames"))
    group = str(spec.get("group", ""))
    storage = definition.storage_version(crd)
    terminating = definition.is_condition_true(crd, "Terminating") or bool(
        _d(crd.get("metadata")).get("deletionTimestamp")
    )
    conversion = _d(spec.get("conversion"))
    out: list[ResourceInfo] = []
    for raw_version in spec.get("versions") or []:
        version = _d(raw_version)
        if version.get("served") is not True:
            continue
        subs = _d(version.get("subresources"))
        subresources: list[Subresource] = []
        if "scale" in subs:
            subresources.append(SCALE_SUBRESOURCE)
        if "status" in subs:
            subresources.append(STATUS_SUBRESOURCE)
        schema = _d(version.get("schema")).get("openAPIV3Schema")
        extra: dict[str, object] = {
            "crd": _d(crd.get("metadata")).get("name", ""),
            "additionalPrinterColumns": list(version.get("additionalPrinterColumns") or []),
            "conversion": conversion,
            "terminating": terminating,
            "crd_object": crd,
        }
        if isinstance(schema, dict):
            extra["openAPIV3Schema"] = schema
            extra["applySchema"] = apply_schema(schema)
            compiled = _compile(schema)
            if compiled is not None:
                extra["schema"] = compiled
        if isinstance(subs.get("scale"), dict):
            extra["scale"] = subs["scale"]
        out.append(
            ResourceInfo(
                group=group,
                version=str(version.get("name", "")),
                kind=str(accepted.get("kind", "")),
                plural=str(accepted.get("plural", "")),
                namespaced=spec.get("scope") == "Namespaced",
                singular=str(accepted.get("singular", "")),
                short_names=tuple(accepted.get("shortNames") or ()),
                categories=tuple(accepted.get("categories") or ()),
                subresources=tuple(subresources),
                status_subresource="status" in subs,
                tracks_generation=True,
                storage_version=storage,
                custom=True,
                extra=extra,
            )
        )
    return out


def _schema(info: ResourceInfo) -> CompiledSchema | None:
    found = info.extra.get("schema")
    return found if found is not None and hasattr(found, "validate") else None  # type: ignore[return-value]


def prune(info: ResourceInfo, obj: Obj) -> list[str]:
    """Drop fields the schema does not know; their paths without the leading dot, as upstream's
    `unknown field "spec.foo"` warnings name them."""
    schema = _schema(info)
    if schema is None:
        return []
    return [path.removeprefix(".") for path in schema.prune(obj)]


def default(info: ResourceInfo, obj: Obj) -> None:
    schema = _schema(info)
    if schema is not None:
        schema.default(obj)


def validate(info: ResourceInfo, obj: Obj, old: Obj | None) -> list[errors.Cause]:
    causes: list[errors.Cause] = []
    meta = _d(obj.get("metadata"))
    for key in ("apiVersion", "kind"):
        if not obj.get(key):
            causes.append(errors.Cause(errors.FIELD_VALUE_REQUIRED, "Required value", key))
    schema = _schema(info)
    if schema is not None:
        causes.extend(schema.validate(obj, old))
    del meta
    return causes


def needs_webhook(info: ResourceInfo) -> bool:
    return _d(info.extra.get("conversion")).get("strategy") == "Webhook"


def rewrite_version(info: ResourceInfo, obj: Obj, version: str) -> Obj:
    """Conversion strategy None: the same object with apiVersion `<group>/<version>`."""
    obj["apiVersion"] = f"{info.group}/{version}"
    return obj
