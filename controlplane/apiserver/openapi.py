"""OpenAPI v3 documents (`/openapi/v3` and `/openapi/v3/<group-version>`), built from the registry.

kubectl needs two things from them: every PATCH operation tagged with its group-version-kind and
offering the `fieldValidation` query parameter (otherwise `create`/`apply` refuse to run with
validation on), and the real schemas of every kind in `components.schemas` (otherwise `kubectl
explain` cannot find the kind). Built-in schemas come from `controlplane.api.schemas`, converted
from its JSON-schema flavour to OpenAPI 3.0 as upstream publishes it; custom resources contribute
the structural schema of their CRD. Documents are large, so they are cached per registry and
rebuilt only when `registry.generation` changes.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from controlplane.api import schemas
from controlplane.api.resources import Registry, ResourceInfo, Subresource

__all__ = [
    "component_name",
    "gv_path",
    "operation_prefix",
    "v3_group_version",
    "v3_group_version_bytes",
    "v3_root",
]

Schema = dict[str, Any]

_COMPONENTS = "#/components/schemas/"
_SOURCE_REF = "#/$defs/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_OBJECT_META = _META + "ObjectMeta"
_LIST_META = _META + "ListMeta"
_PATCH = _META + "Patch"
_STATUS = _META + "Status"
_DELETE_OPTIONS = _META + "DeleteOptions"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

# Keys whose values are schemas (or maps/lists of schemas); everything else (enum, default,
# required, x-kubernetes-* payloads) is data and must not be rewritten.
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_SINGLES = ("not", "additionalProperties", "items")

_API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should "
    "convert recognized schemas to the latest internal value, and may reject unrecognized values. "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
_KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer "
    "this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
_METADATA_DESCRIPTION = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


# -- schema conversion ---------------------------------------------------------------------------


def _convert(node: Any) -> Any:
    """JSON-schema flavour (`type: [T, "null"]`, `$ref: #/$defs/X`) -> OpenAPI 3.0 as upstream
    publishes it (`type: T`, `$ref: #/components/schemas/X`, a `$ref` with siblings wrapped in
    `allOf` because OpenAPI 3.0 ignores siblings of `$ref`)."""
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, list):
            kept = [t for t in value if t != "null"]
            if len(kept) == 1:
                out["type"] = kept[0]
            elif kept:
                out["type"] = kept
        elif key == "$ref" and isinstance(value, str):
            out["$ref"] = _COMPONENTS + value.removeprefix(_SOURCE_REF)
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_convert(sub) for sub in value]
        elif key in _SCHEMA_SINGLES and isinstance(value, dict):
            out[key] = _convert(value)
        else:
            out[key] = value
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


@functools.cache
def _builtin_component(name: str) -> Schema:
    """One upstream definition, converted. Shared between documents: treat as read-only."""
    source = schemas.definitions()[name]
    converted: Schema = _convert(source)
    if "x-kubernetes-group-version-kind" in converted:
        # kubernetes-validate pins apiVersion/kind with an enum; upstream documents no enum there.
        props = converted.get("properties", {})
        for field_name in ("apiVersion", "kind"):
            if isinstance(props.get(field_name), dict):
                props[field_name] = {k: v for k, v in props[field_name].items() if k != "enum"}
    if name == _INT_OR_STRING:
        # Upstream's v3 form (intstr's OpenAPIV3OneOfTypes and format).
        converted = {"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}
    return converted


def _refs(node: Any) -> Iterator[str]:
    """Component names referenced anywhere under `node`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_COMPONENTS):
            yield ref.removeprefix(_COMPONENTS)
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def component_name(info: ResourceInfo, *, list_kind: bool = False) -> str:
    """The `components.schemas` key of a resource's kind (or its list kind). Built-ins use the
    upstream Go package name; custom resources the reversed group, as apiextensions does
    (`stable.example.com/v1 CronTab` -> `com.example.stable.v1.CronTab`)."""
    kind = info.list_kind if list_kind else info.kind
    if not info.custom:
        name = schemas.gvk_index().get((info.group, info.version, kind))
        if name is not None:
            return name
    reversed_group = ".".join(reversed(info.group.split("."))) if info.group else "core"
    return f"{reversed_group}.{info.version}.{kind}"


def _gvk_list(group: str, version: str, kind: str) -> list[dict[str, str]]:
    return [{"group": group, "kind": kind, "version": version}]


def _ref(name: str) -> Schema:
    return {"$ref": _COMPONENTS + name}


def _custom_components(info: ResourceInfo) -> dict[str, Schema]:
    """The kind and list schemas of a custom resource from its CRD's structural schema."""
    raw = info.extra.get("openAPIV3Schema")
    schema: Schema = (
        copy.deepcopy(raw)
        if isinstance(raw, dict)
        else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    )
    schema.setdefault("type", "object")
    props: Schema = schema.setdefault("properties", {})
    props["apiVersion"] = {"description": _API_VERSION_DESCRIPTION, "type": "string"}
    props["kind"] = {"description": _KIND_DESCRIPTION, "type": "string"}
    props["metadata"] = {"allOf": [_ref(_OBJECT_META)], "description": _METADATA_DESCRIPTION}
    schema["x-kubernetes-group-version-kind"] = _gvk_list(info.group, info.version, info.kind)
    name = component_name(info)
    list_schema: Schema = {
        "description": f"{info.list_kind} is a list of {info.kind}",
        "properties": {
            "apiVersion": {"description": _API_VERSION_DESCRIPTION, "type": "string"},
            "items": {
                "description": (
                    f"List of {info.plural}. More info: "
                    "https://git.k8s.io/community/contributors/devel/api-conventions.md"
                ),
                "items": _ref(name),
                "type": "array",
            },
            "kind": {"description": _KIND_DESCRIPTION, "type": "string"},
            "metadata": {
                "allOf": [_ref(_LIST_META)],
                "description": "Standard list metadata. More info: "
                "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            },
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": _gvk_list(info.group, info.version, info.list_kind),
    }
    return {name: schema, component_name(info, list_kind=True): list_schema}


# -- paths ---------------------------------------------------------------------------------------


def gv_path(group: str, version: str) -> str:
    """`api/v1` or `apis/<group>/<version>`: the key of a group-version in `/openapi/v3`."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", ".").split(".") if part)


def operation_prefix(group: str, version: str) -> str:
    """`CoreV1`, `AppsV1`, `RbacAuthorizationV1`, `StableExampleComV1` as in upstream operationIds."""
    if not group:
        return f"Core{_camel(version)}"
    return _camel(group.removesuffix(".k8s.io")) + _camel(version)


def _param(name: str, description: str, *, location: str = "query", kind: str = "string") -> Schema:
    param: Schema = {"description": description, "in": location, "name": name}
    if location == "path":
        param["required"] = True
    param["schema"] = {"type": kind, "uniqueItems": True}
    return param


_P_PRETTY = _param("pretty", "If 'true', then the output is pretty printed.")
_P_DRY_RUN = _param(
    "dryRun", "When present, indicates that modifications should not be persisted. Valid values are: - All"
)
_P_FIELD_MANAGER = _param(
    "fieldManager",
    "fieldManager is a name associated with the actor or entity that is making these changes. "
    "Required for apply requests (application/apply-patch), optional otherwise.",
)
_P_FIELD_VALIDATION = _param(
    "fieldValidation",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) "
    "containing unknown or duplicate fields. Valid values are: - Ignore: unknown fields are dropped "
    "silently. - Warn: a warning is sent for each unknown or duplicate field. - Strict: the request "
    "fails with a BadRequest error listing every unknown and duplicate field.",
)
_P_FORCE = _param(
    "force",
    'Force is going to "force" Apply requests: the caller re-acquires fields owned by other managers. '
    "Must be unset for non-apply patch requests.",
    kind="boolean",
)
_P_GRACE = _param(
    "gracePeriodSeconds",
    "The duration in seconds before the object should be deleted; zero means delete immediately.",
    kind="integer",
)
_P_PROPAGATION = _param(
    "propagationPolicy",
    "Whether and how garbage collection will be performed: Orphan, Background or Foreground.",
)
_P_ORPHAN = _param(
    "orphanDependents",
    "Deprecated: please use the PropagationPolicy. Should the dependent objects be orphaned.",
    kind="boolean",
)
_LIST_PARAMS: tuple[Schema, ...] = (
    _param(
        "allowWatchBookmarks",
        'allowWatchBookmarks requests watch events with type "BOOKMARK".',
        kind="boolean",
    ),
    _param("continue", "The continue token returned by a previous list call with a limit."),
    _param("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _param("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _param("limit", "limit is a maximum number of responses to return for a list call.", kind="integer"),
    _param(
        "resourceVersion",
        "resourceVersion sets a constraint on what resource versions a request may be served from.",
    ),
    _param(
        "resourceVersionMatch",
        "resourceVersionMatch determines how resourceVersion is applied to list calls.",
    ),
    _param(
        "sendInitialEvents",
        "With watch=true, begin the stream with synthetic events for the current state of the collection.",
        kind="boolean",
    ),
    _param("timeoutSeconds", "Timeout for the list/watch call.", kind="integer"),
    _param("watch", "Watch for changes to the described resources.", kind="boolean"),
)
_P_NAMESPACE = _param(
    "namespace", "object name and auth scope, such as for teams and projects", location="path"
)


def _content(name: str, *types: str) -> Schema:
    return {t: {"schema": _ref(name)} for t in types}


def _responses(name: str, *codes: str) -> Schema:
    labels = {"200": "OK", "201": "Created", "202": "Accepted"}
    out: Schema = {
        code: {"content": _content(name, "application/json"), "description": labels[code]} for code in codes
    }
    out["401"] = {"description": "Unauthorized"}
    return out


@dataclass(frozen=True)
class _Target:
    """What an endpoint reads and writes: the schema name and the GVK tagged on its operations."""

    schema: str
    group: str
    version: str
    kind: str

    @property
    def gvk(self) -> dict[str, str]:
        return {"group": self.group, "kind": self.kind, "version": self.version}


def _operation(
    action: str,
    operation_id: str,
    description: str,
    target: _Target,
    tag: str,
    *,
    parameters: Iterable[Schema] = (),
    request: Schema | None = None,
    responses: Schema,
) -> Schema:
    op: Schema = {"description": description, "operationId": operation_id}
    params = list(parameters)
    if params:
        op["parameters"] = params
    if request is not None:
        op["requestBody"] = request
    op["responses"] = responses
    op["tags"] = [tag]
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = target.gvk
    return op


def _patch_body(custom: bool) -> Schema:
    types = ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"]
    if not custom:
        # Strategic merge patch needs Go struct tags; upstream does not offer it for custom resources.
        types.append("application/strategic-merge-patch+json")
    return {"content": _content(_PATCH, *types), "required": True}


def _write_ops(
    verbs: Iterable[str], target: _Target, *, op_suffix: str, noun: str, tag: str, custom: bool, prefix: str
) -> Schema:
    """get/put/patch/post on one item path (the object itself or one of its subresources)."""
    item: Schema = {}
    verb_set = set(verbs)
    if "get" in verb_set:
        item["get"] = _operation(
            "get",
            f"read{prefix}{op_suffix}",
            f"read {noun}",
            target,
            tag,
            responses=_responses(target.schema, "200"),
        )
    if "update" in verb_set:
        item["put"] = _operation(
            "put",
            f"replace{prefix}{op_suffix}",
            f"replace {noun}",
            target,
            tag,
            parameters=(_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION),
            request={"content": _content(target.schema, "*/*"), "required": True},
            responses=_responses(target.schema, "200", "201"),
        )
    if "patch" in verb_set:
        item["patch"] = _operation(
            "patch",
            f"patch{prefix}{op_suffix}",
            f"partially update {noun}",
            target,
            tag,
            parameters=(_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION, _P_FORCE),
            request=_patch_body(custom),
            responses=_responses(target.schema, "200", "201"),
        )
    if "create" in verb_set:
        item["post"] = _operation(
            "post",
            f"create{prefix}{op_suffix}",
            f"create {noun}",
            target,
            tag,
            parameters=(_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION),
            request={"content": _content(target.schema, "*/*"), "required": True},
            responses=_responses(target.schema, "200", "201", "202"),
        )
    return item


def _sub_target(info: ResourceInfo, sub: Subresource) -> _Target:
    group = info.group if sub.group is None else sub.group
    version = info.version if sub.version is None else sub.version
    kind = sub.kind or info.kind
    if (group, version, kind) == (info.group, info.version, info.kind):
        return _Target(component_name(info), group, version, kind)
    name = schemas.gvk_index().get((group, version, kind), f"{group or 'core'}.{version}.{kind}")
    return _Target(name, group, version, kind)


def _resource_paths(info: ResourceInfo) -> dict[str, Schema]:
    base = "/" + gv_path(info.group, info.version)
    prefix = operation_prefix(info.group, info.version)
    tag = f"{info.group.removesuffix('.k8s.io').replace('.', '_') or 'core'}_{info.version}"
    target = _Target(component_name(info), info.group, info.version, info.kind)
    list_name = component_name(info, list_kind=True)
    scope = "Namespaced" if info.namespaced else ""
    collection = (
        f"{base}/namespaces/{{namespace}}/{info.plural}" if info.namespaced else f"{base}/{info.plural}"
    )
    item_path = f"{collection}/{{name}}"
    scope_params = [_P_NAMESPACE] if info.namespaced else []
    verbs = set(info.verbs)
    paths: dict[str, Schema] = {}

    coll: Schema = {}
    if "list" in verbs:
        coll["get"] = _operation(
            "list",
            f"list{prefix}{scope}{info.kind}",
            f"list or watch objects of kind {info.kind}",
            target,
            tag,
            parameters=_LIST_PARAMS,
            responses={
                "200": {
                    "content": _content(list_name, "application/json", "application/json;stream=watch"),
                    "description": "OK",
                },
                "401": {"description": "Unauthorized"},
            },
        )
    if "create" in verbs:
        coll.update(
            _write_ops(
                ("create",),
                target,
                op_suffix=f"{scope}{info.kind}",
                noun=f"a {info.kind}",
                tag=tag,
                custom=info.custom,
                prefix=prefix,
            )
        )
    if "deletecollection" in verbs:
        coll["delete"] = _operation(
            "deletecollection",
            f"delete{prefix}Collection{scope}{info.kind}",
            f"delete collection of {info.kind}",
            target,
            tag,
            parameters=(_P_DRY_RUN, _P_GRACE, _P_ORPHAN, _P_PROPAGATION, *_LIST_PARAMS),
            request={"content": _content(_DELETE_OPTIONS, "*/*")},
            responses=_responses(_STATUS, "200"),
        )
    if coll:
        coll["parameters"] = [*scope_params, _P_PRETTY]
        paths[collection] = coll

    item = _write_ops(
        verbs & {"get", "update", "patch"},
        target,
        op_suffix=f"{scope}{info.kind}",
        noun=f"the specified {info.kind}",
        tag=tag,
        custom=info.custom,
        prefix=prefix,
    )
    if "delete" in verbs:
        item["delete"] = _operation(
            "delete",
            f"delete{prefix}{scope}{info.kind}",
            f"delete a {info.kind}",
            target,
            tag,
            parameters=(_P_DRY_RUN, _P_GRACE, _P_ORPHAN, _P_PROPAGATION),
            request={"content": _content(_DELETE_OPTIONS, "*/*")},
            responses=_responses(_STATUS, "200", "202"),
        )
    name_param = _param("name", f"name of the {info.kind}", location="path")
    if item:
        item["parameters"] = [name_param, *scope_params, _P_PRETTY]
        paths[item_path] = item

    for sub in info.subresources:
        sub_target = _sub_target(info, sub)
        suffix = f"{scope}{info.kind}{_camel(sub.name)}"
        if sub.name == "log":
            # Logs are plain text, not an object; upstream documents them that way.
            sub_item: Schema = {
                "get": _operation(
                    "get",
                    f"read{prefix}{suffix}",
                    f"read log of the specified {info.kind}",
                    sub_target,
                    tag,
                    responses={
                        "200": {
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                            "description": "OK",
                        },
                        "401": {"description": "Unauthorized"},
                    },
                )
            }
        else:
            sub_item = _write_ops(
                sub.verbs,
                sub_target,
                op_suffix=suffix,
                noun=f"{sub.name} of the specified {info.kind}",
                tag=tag,
                custom=info.custom,
                prefix=prefix,
            )
        if sub_item:
            sub_item["parameters"] = [
                _param("name", f"name of the {sub_target.kind}", location="path"),
                *scope_params,
                _P_PRETTY,
            ]
            paths[f"{item_path}/{sub.name}"] = sub_item

    if info.namespaced and "list" in verbs:
        paths[f"{base}/{info.plural}"] = {
            "get": _operation(
                "list",
                f"list{prefix}{info.kind}ForAllNamespaces",
                f"list or watch objects of kind {info.kind}",
                target,
                tag,
                responses={
                    "200": {
                        "content": _content(list_name, "application/json", "application/json;stream=watch"),
                        "description": "OK",
                    },
                    "401": {"description": "Unauthorized"},
                },
            ),
            "parameters": [*_LIST_PARAMS, _P_PRETTY],
        }
    return paths


# -- documents -----------------------------------------------------------------------------------


def _build(registry: Registry, group: str, version: str) -> Schema | None:
    infos = registry.in_group_version(group, version)
    if not infos:
        return None
    paths: dict[str, Schema] = {}
    components: dict[str, Schema] = {}
    for info in infos:
        paths.update(_resource_paths(info))
        if info.custom:
            components.update(_custom_components(info))
    # Every schema the paths or the custom schemas point at, and everything those point at in turn.
    pending = list(_refs(paths)) + [ref for schema in components.values() for ref in _refs(schema)]
    definitions = schemas.definitions()
    while pending:
        name = pending.pop()
        if name in components or name not in definitions:
            continue
        component = _builtin_component(name)
        components[name] = component
        pending.extend(_refs(component))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": schemas.KUBERNETES_SCHEMA_VERSION},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(components.items()))},
    }


@dataclass
class _Entry:
    document: Schema
    encoded: bytes
    hash: str


@dataclass
class _Cache:
    # (group, version) -> (the group-version's generation it was built at, the entry)
    entries: dict[tuple[str, str], tuple[int, _Entry | None]] = field(default_factory=dict)


_caches: weakref.WeakKeyDictionary[Registry, _Cache] = weakref.WeakKeyDictionary()


def _entry(registry: Registry, group: str, version: str) -> _Entry | None:
    """Documents are rebuilt per group-version: a CRD change costs its own group's documents,
    not every built-in one (the hashes of the others stay, so kubectl keeps its cache)."""
    cache = _caches.get(registry)
    if cache is None:
        cache = _Cache()
        _caches[registry] = cache
    key = (group, version)
    generation = registry.gv_generation(group, version)
    found = cache.entries.get(key)
    if found is not None and found[0] == generation:
        return found[1]
    document = _build(registry, group, version)
    entry: _Entry | None = None
    if document is not None:
        encoded = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        # Upstream publishes an uppercase hex SHA-512 of the document; kubectl caches by URL.
        entry = _Entry(document, encoded, hashlib.sha512(encoded).hexdigest().upper())
    cache.entries[key] = (generation, entry)
    return entry


def v3_group_version(registry: Registry, group: str, version: str) -> Schema | None:
    """The OpenAPI 3.0 document of one group-version, or None if it is not served (404).
    Cached and shared: callers must not mutate it."""
    entry = _entry(registry, group, version)
    return None if entry is None else entry.document


def v3_group_version_bytes(registry: Registry, group: str, version: str) -> tuple[bytes, str] | None:
    """The encoded document and its hash (for the `?hash=` URL and the ETag), or None (404)."""
    entry = _entry(registry, group, version)
    return None if entry is None else (entry.encoded, entry.hash)


def v3_root(registry: Registry) -> Schema:
    """`GET /openapi/v3`: one entry per served group-version, pointing at its document by hash."""
    paths: dict[str, Schema] = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            entry = _entry(registry, group, version)
            if entry is None:
                continue
            key = gv_path(group, version)
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={entry.hash}"}
    return {"paths": dict(sorted(paths.items()))}
