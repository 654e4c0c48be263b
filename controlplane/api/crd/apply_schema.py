"""The schema server-side apply types a custom resource with.

Upstream's CRD handler builds the field manager's type converter from each served version's
structural schema through `builder.BuildOpenAPIV3`, which declares `apiVersion`, `kind` and
`metadata` (ObjectMeta) at the root and in every `x-kubernetes-embedded-resource`; the
`x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` markers then
decide how lists and maps merge and who owns which entry. Lists without a marker are atomic and
objects granular, as structured-merge-diff's schema conversion makes them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OBJECT_META_REF", "apply_schema"]

Schema = dict[str, Any]

OBJECT_META_REF: Schema = {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}

# Value validations play no part in typing; what stays is what the walk reads.
_KEPT = (
    "type",
    "default",
    "nullable",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
)


def apply_schema(schema: Schema) -> Schema:
    """A copy of a CRD version's `openAPIV3Schema` shaped for `controlplane.api.patch.apply`."""
    return _node(schema, resource=True)


def _node(schema: Any, *, resource: bool) -> Schema:
    if not isinstance(schema, dict):
        return {}
    out: Schema = {k: schema[k] for k in _KEPT if k in schema}
    props = schema.get("properties")
    if isinstance(props, dict):
        out["properties"] = {name: _node(sub, resource=False) for name, sub in props.items()}
    items = schema.get("items")
    if isinstance(items, dict):
        out["items"] = _node(items, resource=False)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = _node(extra, resource=False)
    elif extra is True:
        out["additionalProperties"] = {}
    if resource or schema.get("x-kubernetes-embedded-resource"):
        declared = out.setdefault("properties", {})
        declared["apiVersion"] = {"type": "string"}
        declared["kind"] = {"type": "string"}
        declared["metadata"] = dict(OBJECT_META_REF)
        out.setdefault("type", "object")
    return out
