"""The CustomResourceDefinition object itself: defaulting, strategy, validation, conditions.

After upstream apiextensions-apiserver `pkg/apis/apiextensions/v1/defaults.go`,
`pkg/registry/customresourcedefinition/strategy.go` and `pkg/apis/apiextensions/validation`
(the object-level rules; the schema rules are the schema engine's `validate_crd_schema`).
Pure functions over the JSON object; nothing here does IO.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controlplane.api import errors, names

__all__ = [
    "CLEANUP_FINALIZER",
    "condition",
    "default_crd",
    "is_condition_true",
    "mark_for_deletion",
    "prepare_for_create",
    "prepare_for_update",
    "set_condition",
    "storage_version",
    "validate_crd",
]

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_SCOPES = ("Cluster", "Namespaced")
_STRATEGIES = ("None", "Webhook")
_COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
_CONVERSION_REVIEW_VERSIONS = ("v1", "v1beta1")

Obj = dict[str, Any]


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# -- defaulting ---------------------------------------------------------------------------------


def default_crd(crd: Obj) -> None:
    """`SetDefaults_CustomResourceDefinition(Spec)` and the webhook ServiceReference port."""
    spec = crd.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    names_ = spec.get("names")
    if isinstance(names_, dict):
        kind = names_.get("kind")
        if not names_.get("singular") and isinstance(kind, str) and kind:
            names_["singular"] = kind.lower()
        if not names_.get("listKind") and isinstance(kind, str) and kind:
            names_["listKind"] = f"{kind}List"
    conversion = spec.get("conversion")
    if conversion is None:
        spec["conversion"] = {"strategy": "None"}
    elif isinstance(conversion, dict):
        service = _d(_d(_d(conversion.get("webhook")).get("clientConfig")).get("service"))
        if service and service.get("port") is None:
            service["port"] = 443


def storage_version(crd: Obj) -> str:
    for version in _l(_d(crd.get("spec")).get("versions")):
        if isinstance(version, dict) and version.get("storage") is True:
            return str(version.get("name", ""))
    return ""


# -- strategy -----------------------------------------------------------------------------------


def _record_storage_version(crd: Obj) -> None:
    stored = crd.setdefault("status", {}).setdefault("storedVersions", [])
    version = storage_version(crd)
    if version and version not in stored:
        stored.append(version)


def prepare_for_create(crd: Obj) -> None:
    """Status starts empty but for the stored version (upstream's strategy.PrepareForCreate)."""
    crd["status"] = {"acceptedNames": {"kind": "", "plural": ""}, "storedVersions": []}
    default_crd(crd)
    _record_storage_version(crd)


def prepare_for_update(crd: Obj, old: Obj) -> None:
    """Main-resource writes keep the stored status, and a new storage version is recorded."""
    crd["status"] = copy.deepcopy(old.get("status") or {})
    default_crd(crd)
    _record_storage_version(crd)


# -- conditions ---------------------------------------------------------------------------------


def condition(crd: Obj, kind: str) -> Obj | None:
    for cond in _l(_d(crd.get("status")).get("conditions")):
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def is_condition_true(crd: Obj, kind: str) -> bool:
    found = condition(crd, kind)
    return found is not None and found.get("status") == "True"


def set_condition(crd: Obj, new: Obj, now: str) -> None:
    """`SetCRDCondition`: lastTransitionTime moves only when the status does."""
    conditions = crd.setdefault("status", {}).setdefault("conditions", [])
    for index, cond in enumerate(conditions):
        if isinstance(cond, dict) and cond.get("type") == new["type"]:
            moved = cond.get("status") != new["status"]
            merged = {**new, "lastTransitionTime": now if moved else cond.get("lastTransitionTime", now)}
            conditions[index] = _ordered_condition(merged)
            return
    conditions.append(_ordered_condition({**new, "lastTransitionTime": now}))


def _ordered_condition(cond: Obj) -> Obj:
    keys = ("type", "status", "lastTransitionTime", "reason", "message")
    return {k: cond[k] for k in keys if k in cond}


def mark_for_deletion(crd: Obj, now: str) -> Obj:
    """The first DELETE of a CRD (upstream's CRD REST Delete): deletionTimestamp, the cleanup
    finalizer and the Terminating condition; the finalizer controller does the rest."""
    out = copy.deepcopy(crd)
    meta = out.setdefault("metadata", {})
    meta.setdefault("deletionTimestamp", now)
    meta.setdefault("deletionGracePeriodSeconds", 0)
    finalizers = meta.setdefault("finalizers", [])
    if CLEANUP_FINALIZER not in finalizers:
        finalizers.append(CLEANUP_FINALIZER)
    set_condition(
        out,
        {
            "type": "Terminating",
            "status": "True",
            "reason": "InstanceDeletionPending",
            "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        },
        now,
    )
    return out


# -- validation ---------------------------------------------------------------------------------


def _render(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


class _Errs:
    def __init__(self) -> None:
        self.causes: list[errors.Cause] = []

    def add(self, reason: str, path: str, message: str) -> None:
        self.causes.append(errors.Cause(reason, message, path))

    def required(self, path: str, detail: str = "") -> None:
        self.add(
            errors.FIELD_VALUE_REQUIRED, path, f"Required value: {detail}" if detail else "Required value"
        )

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.add(errors.FIELD_VALUE_INVALID, path, f"Invalid value: {_render(value)}: {detail}")

    def not_supported(self, path: str, value: Any, valid: tuple[str, ...]) -> None:
        quoted = ", ".join(json.dumps(v) for v in valid)
        self.add(
            errors.FIELD_VALUE_NOT_SUPPORTED,
            path,
            f"Unsupported value: {_render(value)}: supported values: {quoted}",
        )

    def forbidden(self, path: str, detail: str) -> None:
        self.add(errors.FIELD_VALUE_FORBIDDEN, path, f"Forbidden: {detail}")

    def duplicate(self, path: str, value: Any) -> None:
        self.add(errors.FIELD_VALUE_DUPLICATE, path, f"Duplicate value: {_render(value)}")


def _dns1035(errs: _Errs, path: str, value: Any, *, lower: bool = False) -> None:
    text = str(value)
    messages = names.is_dns1035_label(text.lower() if lower else text)
    if messages:
        if lower:
            errs.invalid(path, text, "may have mixed case, but should otherwise match: " + ",".join(messages))
        else:
            errs.invalid(path, text, ",".join(messages))


def _validate_names(errs: _Errs, names_: Obj, path: str) -> None:
    plural = names_.get("plural")
    if not plural:
        errs.required(f"{path}.plural")
    else:
        _dns1035(errs, f"{path}.plural", plural)
    singular = names_.get("singular")
    if singular:
        _dns1035(errs, f"{path}.singular", singular)
    kind = names_.get("kind")
    list_kind = names_.get("listKind")
    if kind and list_kind and kind == list_kind:
        errs.invalid(f"{path}.listKind", list_kind, "kind and listKind may not be the same")
    if not kind:
        errs.required(f"{path}.kind")
    else:
        _dns1035(errs, f"{path}.kind", kind, lower=True)
    if not list_kind:
        errs.required(f"{path}.listKind")
    else:
        _dns1035(errs, f"{path}.listKind", list_kind, lower=True)
    for index, short in enumerate(_l(names_.get("shortNames"))):
        _dns1035(errs, f"{path}.shortNames[{index}]", short)
    for index, category in enumerate(_l(names_.get("categories"))):
        _dns1035(errs, f"{path}.categories[{index}]", category)


def _schema_validator() -> Callable[[dict[str, Any], str], list[errors.Cause]] | None:
    """The schema engine's `structural.validate_crd_schema`, when it is installed."""
    try:
        structural = importlib.import_module("controlplane.api.crd.structural")
    except ImportError:
        return None
    found = getattr(structural, "validate_crd_schema", None)
    return found if callable(found) else None


def _identical(versions: list[Any], field: str) -> bool:
    """upstream's hasIdenticalPerVersion*: every version sets `field`, all to the same value.
    Converting a v1 CRD to the internal form moves such a field to the top level (`spec.validation`,
    `spec.subresources`, `spec.additionalPrinterColumns`), where its errors are then reported."""
    if not versions:
        return False
    first = _d(versions[0]).get(field)
    return all(_d(v).get(field) is not None and _d(v).get(field) == first for v in versions)


@dataclass(frozen=True)
class _Paths:
    """Where a version's schema, subresources and printer columns are validated ('' skips them:
    they were validated once at the top level)."""

    schema: str
    subresources: str
    columns: str


def _validate_version(errs: _Errs, version: Obj, paths: _Paths) -> None:
    schema = _d(version.get("schema")).get("openAPIV3Schema")
    if not paths.schema:
        pass
    elif not isinstance(schema, dict):
        errs.required(f"{paths.schema}.openAPIV3Schema", "schemas are required")
    else:
        validator = _schema_validator()
        if validator is not None:
            errs.causes.extend(validator(schema, f"{paths.schema}.openAPIV3Schema"))
    subresources = _d(version.get("subresources"))
    scale = subresources.get("scale")
    if isinstance(scale, dict) and paths.subresources:
        spath = f"{paths.subresources}.scale"
        for key, prefix in (("specReplicasPath", ".spec."), ("statusReplicasPath", ".status.")):
            value = scale.get(key)
            if not value:
                errs.required(f"{spath}.{key}")
            elif not str(value).startswith(prefix):
                errs.invalid(f"{spath}.{key}", value, f"should be a json path under {prefix.rstrip('.')}")
        selector = scale.get("labelSelectorPath")
        if selector and not str(selector).startswith((".spec.", ".status.")):
            errs.invalid(
                f"{spath}.labelSelectorPath", selector, "should be a json path under either .spec or .status"
            )
    for index, raw_column in enumerate(_l(version.get("additionalPrinterColumns")) if paths.columns else []):
        cpath = f"{paths.columns}[{index}]"
        column = _d(raw_column)
        if not column.get("name"):
            errs.required(f"{cpath}.name")
        column_type = column.get("type")
        if not column_type:
            errs.required(f"{cpath}.type")
        elif column_type not in _COLUMN_TYPES:
            errs.not_supported(f"{cpath}.type", column_type, _COLUMN_TYPES)
        if not column.get("jsonPath"):
            errs.required(f"{cpath}.JSONPath")
        priority = column.get("priority")
        if isinstance(priority, int) and priority < 0:
            errs.invalid(f"{cpath}.priority", priority, "must be greater than or equal to 0")


def _validate_conversion(errs: _Errs, conversion: Obj) -> None:
    strategy = conversion.get("strategy")
    if strategy not in _STRATEGIES:
        errs.not_supported("spec.conversion.strategy", strategy, _STRATEGIES)
        return
    webhook = conversion.get("webhook")
    if strategy == "None":
        if webhook is not None:
            errs.forbidden("spec.conversion.webhook", "should not be set when strategy is not set to Webhook")
        return
    if not isinstance(webhook, dict):
        errs.required("spec.conversion.webhook", "required when strategy is set to Webhook")
        return
    review = _l(webhook.get("conversionReviewVersions"))
    if not review:
        errs.required("spec.conversion.webhook.conversionReviewVersions", "must contain at least one version")
    elif not any(v in _CONVERSION_REVIEW_VERSIONS for v in review):
        errs.invalid(
            "spec.conversion.webhook.conversionReviewVersions",
            review,
            "must include at least one of v1, v1beta1",
        )
    client = _d(webhook.get("clientConfig"))
    has_url = bool(client.get("url"))
    has_service = isinstance(client.get("service"), dict)
    if has_url == has_service:
        errs.required("spec.conversion.webhook.clientConfig", "exactly one of url or service is required")


def validate_crd(crd: Obj, old: Obj | None = None) -> list[errors.Cause]:
    """The object-level rules of `ValidateCustomResourceDefinition(Update)`."""
    errs = _Errs()
    meta = _d(crd.get("metadata"))
    spec = _d(crd.get("spec"))
    group = spec.get("group")
    names_ = _d(spec.get("names"))
    name = meta.get("name", "")
    if f"{names_.get('plural', '')}.{group or ''}" != name:
        errs.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group')
    if not group:
        errs.required("spec.group")
    else:
        for message in names.is_dns1123_subdomain(str(group)):
            errs.invalid("spec.group", group, message)
        if len(str(group).split(".")) < 2:
            errs.invalid("spec.group", group, "should be a domain with at least one dot")
    scope = spec.get("scope")
    if not scope:
        errs.required("spec.scope")
    elif scope not in _SCOPES:
        errs.not_supported("spec.scope", scope, _SCOPES)
    _validate_names(errs, names_, "spec.names")
    versions = _l(spec.get("versions"))
    if not versions:
        errs.required("spec.versions", "must have at least one version")
    storage_count = 0
    seen: set[str] = set()
    unique = True
    hoisted = {
        field: _identical(versions, field) for field in ("schema", "subresources", "additionalPrinterColumns")
    }
    for index, raw in enumerate(versions):
        version = _d(raw)
        vname = str(version.get("name", ""))
        if version.get("storage") is True:
            storage_count += 1
        if vname in seen:
            unique = False
        seen.add(vname)
        messages = names.is_dns1035_label(vname)
        if messages:
            errs.invalid(f"spec.versions[{index}].name", vname, ",".join(messages))
        path = f"spec.versions[{index}]"
        first = index == 0

        def where(field: str, top: str, own: str, path: str = path, first: bool = first) -> str:
            return (top if first else "") if hoisted[field] else own

        paths = _Paths(
            schema=where("schema", "spec.validation", f"{path}.schema"),
            subresources=where("subresources", "spec.subresources", f"{path}.subresources"),
            columns=where(
                "additionalPrinterColumns",
                "spec.additionalPrinterColumns",
                f"{path}.additionalPrinterColumns",
            ),
        )
        _validate_version(errs, version, paths)
    if versions and not unique:
        errs.invalid(
            "spec.versions", [v.get("name") for v in map(_d, versions)], "must contain unique version names"
        )
    if versions and storage_count != 1:
        errs.invalid(
            "spec.versions",
            [v.get("name") for v in map(_d, versions)],
            "must have exactly one version marked as storage version",
        )
    if spec.get("preserveUnknownFields") is True:
        errs.invalid(
            "spec.preserveUnknownFields",
            True,
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        )
    _validate_conversion(errs, _d(spec.get("conversion")))
    status = _d(crd.get("status"))
    stored = _l(status.get("storedVersions"))
    served_names = [str(_d(v).get("name", "")) for v in versions]
    if old is not None:
        old_spec = _d(old.get("spec"))
        if old_spec.get("group") != group:
            errs.invalid("spec.group", group, "field is immutable")
        if old_spec.get("scope") != scope and scope in _SCOPES:
            errs.invalid("spec.scope", scope, "field is immutable")
        if not stored:
            errs.invalid("status.storedVersions", stored, "must have at least one stored version")
        for index, stored_version in enumerate(stored):
            if stored_version not in served_names:
                errs.invalid(
                    f"status.storedVersions[{index}]", stored_version, "must appear in spec.versions"
                )
        if storage_version(crd) and storage_version(crd) not in stored:
            errs.invalid(
                "status.storedVersions", stored, f"must have the storage version {storage_version(crd)}"
            )
    return errs.causes
