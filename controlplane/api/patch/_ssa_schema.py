"""How server-side apply sees a position in an object: the structured-merge-diff type derived
from the upstream OpenAPI schema (kube-openapi's `schemaconv`), or a deduced type when the
schema says nothing (maps granular, lists atomic).

A `TypeRef` keeps both the field-level schema (where upstream places the `x-kubernetes-*` list
and map extensions, beside the `$ref`) and the resolved definition.
"""

from __future__ import annotations

from typing import Any, Literal

from controlplane.api import schemas

Schema = dict[str, Any]
Shape = Literal["map", "list", "scalar"]
ListKind = Literal["atomic", "set", "map"]

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean", "null"})
# Root fields every Kubernetes object declares, also when no schema is known.
_ROOT_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
# Key fields with a declared default in upstream's OpenAPI (`+default="TCP"` on ContainerPort,
# ServicePort, EndpointPort...), which the vendored schemas do not carry.
_KNOWN_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}


class TypeRef:
    __slots__ = ("raw", "resolved", "root")

    def __init__(self, raw: Schema | None, *, root: bool = False) -> None:
        self.raw = raw
        self.resolved = schemas.resolve(raw) if raw is not None else None
        self.root = root

    def _ext(self, name: str) -> Any:
        if self.raw is not None and name in self.raw:
            return self.raw[name]
        if self.resolved is not None:
            return self.resolved.get(name)
        return None

    def schema_shape(self) -> Shape | None:
        """The shape the schema prescribes; None when it leaves the value free (deduced)."""
        res = self.resolved
        if res is None:
            return "map" if self.root else None
        if res.get("x-kubernetes-int-or-string"):
            return "scalar"
        raw_type = res.get("type")
        types = {raw_type} if isinstance(raw_type, str) else set(raw_type or ())
        if "properties" in res or "additionalProperties" in res or "object" in types:
            return "map"
        if "items" in res or "array" in types:
            return "list"
        if types and types <= _SCALAR_TYPES:
            return "scalar"
        return None

    def shape(self, value: Any) -> Shape:
        """The shape a walk treats `value` with: the schema's when the value fits it, else the
        value's own (a mismatch is validation's business, not apply's)."""
        if isinstance(value, dict):
            actual: Shape | None = "map"
        elif isinstance(value, list):
            actual = "list"
        elif value is None:
            actual = None
        else:
            actual = "scalar"
        if actual is None:
            return self.schema_shape() or "scalar"
        return actual

    def typed(self) -> bool:
        return self.resolved is not None

    # maps

    def map_atomic(self) -> bool:
        return bool(self._ext("x-kubernetes-map-type") == "atomic")

    def properties(self) -> dict[str, Any]:
        if self.resolved is None:
            return {}
        props = self.resolved.get("properties")
        return props if isinstance(props, dict) else {}

    def strict(self) -> bool:
        """A struct that declares every field it may hold."""
        res = self.resolved
        return (
            res is not None
            and bool(self.properties())
            and "additionalProperties" not in res
            and not res.get("x-kubernetes-preserve-unknown-fields")
        )

    def field(self, name: str) -> tuple[TypeRef, bool]:
        """(type of field `name`, whether it is a declared struct field)."""
        if self.root and name == "metadata":
            meta = TypeRef(self.properties().get("metadata"))
            if not meta.properties():
                meta = TypeRef(schemas.definitions().get(OBJECT_META))
            return meta, True
        props = self.properties()
        if name in props:
            return TypeRef(props[name]), True
        if self.root and self.resolved is None:
            return TypeRef(None), name in _ROOT_FIELDS
        extra = self.resolved.get("additionalProperties") if self.resolved is not None else None
        if isinstance(extra, dict):
            return TypeRef(extra), False
        return TypeRef(None), False

    # lists

    def list_kind(self) -> tuple[ListKind, tuple[str, ...]]:
        if self.resolved is None:
            return "atomic", ()
        list_type = self._ext("x-kubernetes-list-type")
        if list_type == "map":
            return "map", tuple(self._ext("x-kubernetes-list-map-keys") or ())
        if list_type == "set":
            return "set", ()
        if list_type == "atomic":
            return "atomic", ()
        merge_key = self._ext("x-kubernetes-patch-merge-key")
        if merge_key:
            return "map", (str(merge_key),)
        return "atomic", ()

    def item(self) -> TypeRef:
        items = self.resolved.get("items") if self.resolved is not None else None
        return TypeRef(items if isinstance(items, dict) else None)

    def key_default(self, key: str) -> tuple[bool, Any]:
        """Default of key field `key` of this (item) type, when one is known."""
        prop = self.properties().get(key)
        if isinstance(prop, dict):
            if "default" in prop:
                return True, prop["default"]
            if key in _KNOWN_KEY_DEFAULTS:
                return True, _KNOWN_KEY_DEFAULTS[key]
        return False, None


def root_type(schema: Schema | None) -> TypeRef:
    return TypeRef(schema, root=True)
