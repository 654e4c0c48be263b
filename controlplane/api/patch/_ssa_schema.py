"""How server-side apply sees a position in an object: the structured-merge-diff type derived
from the upstream OpenAPI schema (kube-openapi's `schemaconv`), or a deduced type when the
schema says nothing (maps granular, lists atomic).

A `TypeRef` keeps both the field-level schema (where upstream places the `x-kubernetes-*` list
and map extensions, beside the `$ref`) and the resolved definition. Every walk asks the same
questions of the same schema nodes on every write, so a `TypeRef` answers them from values
computed once, and `type_of` hands out one shared `TypeRef` per schema node.
"""

from __future__ import annotations

from typing import Any, Literal

from controlplane.api import schemas

__all__ = ["ListKind", "Schema", "Shape", "TypeRef", "root_type", "type_of"]

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
    __slots__ = (
        "_extra",
        "_fields",
        "_item",
        "_list_kind",
        "_map_atomic",
        "_none_shape",
        "_props",
        "_strict",
        "raw",
        "resolved",
        "root",
    )

    def __init__(self, raw: Schema | None, *, root: bool = False) -> None:
        self.raw = raw
        self.resolved = schemas.resolve(raw) if raw is not None else None
        self.root = root
        res = self.resolved
        props = res.get("properties") if res is not None else None
        self._props: dict[str, Any] = props if isinstance(props, dict) else {}
        self._map_atomic = bool(self._ext("x-kubernetes-map-type") == "atomic")
        self._strict = (
            res is not None
            and bool(self._props)
            and "additionalProperties" not in res
            and not res.get("x-kubernetes-preserve-unknown-fields")
        )
        self._list_kind = self._compute_list_kind()
        self._none_shape: Shape = self.schema_shape() or "scalar"
        # Filled on first use: declared fields only, so free-form keys (labels...) never grow it.
        self._fields: dict[str, tuple[TypeRef, bool]] = {}
        self._extra: tuple[TypeRef, bool] | None = None
        self._item: TypeRef | None = None

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
            return "map"
        if isinstance(value, list):
            return "list"
        if value is None:
            return self._none_shape
        return "scalar"

    def typed(self) -> bool:
        return self.resolved is not None

    # maps

    def map_atomic(self) -> bool:
        return self._map_atomic

    def properties(self) -> dict[str, Any]:
        return self._props

    def strict(self) -> bool:
        """A struct that declares every field it may hold."""
        return self._strict

    def field(self, name: str) -> tuple[TypeRef, bool]:
        """(type of field `name`, whether it is a declared struct field)."""
        hit = self._fields.get(name)
        if hit is not None:
            return hit
        if self.root and name == "metadata":
            meta = type_of(self._props.get("metadata"))
            if not meta._props:
                meta = type_of(schemas.definitions().get(OBJECT_META))
            hit = (meta, True)
        elif name in self._props:
            hit = (type_of(self._props[name]), True)
        elif self.root and self.resolved is None:
            return _NONE, name in _ROOT_FIELDS
        else:
            if self._extra is None:
                extra = self.resolved.get("additionalProperties") if self.resolved is not None else None
                self._extra = (type_of(extra) if isinstance(extra, dict) else _NONE, False)
            return self._extra
        self._fields[name] = hit
        return hit

    # lists

    def _compute_list_kind(self) -> tuple[ListKind, tuple[str, ...]]:
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

    def list_kind(self) -> tuple[ListKind, tuple[str, ...]]:
        return self._list_kind

    def item(self) -> TypeRef:
        item = self._item
        if item is None:
            items = self.resolved.get("items") if self.resolved is not None else None
            item = self._item = type_of(items if isinstance(items, dict) else None)
        return item

    def key_default(self, key: str) -> tuple[bool, Any]:
        """Default of key field `key` of this (item) type, when one is known."""
        prop = self._props.get(key)
        if isinstance(prop, dict):
            if "default" in prop:
                return True, prop["default"]
            if key in _KNOWN_KEY_DEFAULTS:
                return True, _KNOWN_KEY_DEFAULTS[key]
        return False, None


_NONE = TypeRef(None)
_NONE_ROOT = TypeRef(None, root=True)

# One TypeRef per schema node, by identity. Schemas are long-lived (the module-level upstream
# definitions); each TypeRef holds its `raw` dict, so an id here is never reused by another
# dict while its entry lives. The bound only matters for callers that pass throwaway schemas.
_CACHE: dict[tuple[int, bool], TypeRef] = {}
_CACHE_LIMIT = 50_000


def type_of(raw: Schema | None, *, root: bool = False) -> TypeRef:
    """The shared `TypeRef` of a schema node (a schema must not change once used)."""
    if raw is None:
        return _NONE_ROOT if root else _NONE
    key = (id(raw), root)
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        hit = _CACHE[key] = TypeRef(raw, root=root)
    return hit


def root_type(schema: Schema | None) -> TypeRef:
    return type_of(schema, root=True)
