"""The tiny protobuf OpenAPI v2 document kubectl 1.27/1.28 need before they will `create`/`apply`.

Those versions decide whether the server supports `fieldValidation` from `GET /openapi/v2` only,
and they always decode the body as the gnostic `openapi_v2.Document` protobuf, whatever the
Content-Type. So this module hand-encodes (protobuf wire format, no library) a document with one
path item per resource whose PATCH operation carries an operationId, the `fieldValidation` query
parameter and the `x-kubernetes-group-version-kind` vendor extension. Nothing else is needed:
once kubectl sees the parameter it validates on the server instead of against these schemas.

Field numbers are those of gnostic's `openapiv2/OpenAPIv2.proto`.
"""

from __future__ import annotations

import re
import weakref

from controlplane.api.resources import Registry, ResourceInfo
from controlplane.api.schemas import KUBERNETES_SCHEMA_VERSION
from controlplane.apiserver.openapi import gv_path, operation_prefix

__all__ = ["OPENAPI_V2_CONTENT_TYPE", "document", "gvk_yaml"]

# A dot before v1.0, not the `@` kubectl puts in its Accept: Go's mime parser rejects the `@` form
# in a response ("mime: unexpected content after media subtype"). This is what kube-openapi emits.
OPENAPI_V2_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

_LEN = 2  # wire type of length-delimited fields (strings, bytes, embedded messages)

# Document
_DOCUMENT_SWAGGER, _DOCUMENT_INFO, _DOCUMENT_PATHS = 1, 2, 8
_INFO_TITLE, _INFO_VERSION = 1, 2
_PATHS_PATH = 2
_NAMED_NAME, _NAMED_VALUE = 1, 2  # NamedPathItem and NamedAny share the layout
_PATH_ITEM_PATCH = 8
_OPERATION_ID, _OPERATION_PARAMETERS, _OPERATION_VENDOR_EXTENSION = 5, 8, 13
_PARAMETERS_ITEM_PARAMETER = 1
_PARAMETER_NON_BODY = 2
_NON_BODY_QUERY = 3
_QUERY_IN, _QUERY_NAME, _QUERY_TYPE = 2, 4, 6
_ANY_YAML = 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | _LEN) + _varint(len(data)) + data


_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")


def _yaml_scalar(value: str) -> str:
    # Group, version and kind names are plain YAML scalars; only "" needs quoting.
    return value if _PLAIN.fullmatch(value) else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def gvk_yaml(group: str, version: str, kind: str) -> str:
    """The vendor extension's value, as YAML (the form gnostic's `Any.yaml` holds)."""
    return f"group: {_yaml_scalar(group)}\nkind: {_yaml_scalar(kind)}\nversion: {_yaml_scalar(version)}\n"


def _operation_id(info: ResourceInfo) -> str:
    # Same scheme as the v3 document's operationIds (patchCoreV1NamespacedConfigMap).
    scope = "Namespaced" if info.namespaced else ""
    return f"patch{operation_prefix(info.group, info.version)}{scope}{info.kind}"


def _item_path(info: ResourceInfo) -> str:
    base = "/" + gv_path(info.group, info.version)
    if info.namespaced:
        return f"{base}/namespaces/{{namespace}}/{info.plural}/{{name}}"
    return f"{base}/{info.plural}/{{name}}"


_FIELD_VALIDATION_PARAMETER = _field(
    _OPERATION_PARAMETERS,
    _field(
        _PARAMETERS_ITEM_PARAMETER,
        _field(
            _PARAMETER_NON_BODY,
            _field(
                _NON_BODY_QUERY,
                _field(_QUERY_IN, "query")
                + _field(_QUERY_NAME, "fieldValidation")
                + _field(_QUERY_TYPE, "string"),
            ),
        ),
    ),
)


def _path_item(info: ResourceInfo) -> bytes:
    extension = _field(_NAMED_NAME, "x-kubernetes-group-version-kind") + _field(
        _NAMED_VALUE, _field(_ANY_YAML, gvk_yaml(info.group, info.version, info.kind))
    )
    operation = (
        _field(_OPERATION_ID, _operation_id(info))
        + _FIELD_VALIDATION_PARAMETER
        + _field(_OPERATION_VENDOR_EXTENSION, extension)
    )
    return _field(_NAMED_NAME, _item_path(info)) + _field(_NAMED_VALUE, _field(_PATH_ITEM_PATCH, operation))


def _encode(registry: Registry) -> bytes:
    infos = sorted(
        (info for info in registry if "patch" in info.verbs), key=lambda i: (i.group, i.version, i.plural)
    )
    paths = b"".join(_field(_PATHS_PATH, _path_item(info)) for info in infos)
    info_message = _field(_INFO_TITLE, "Kubernetes") + _field(_INFO_VERSION, KUBERNETES_SCHEMA_VERSION)
    return (
        _field(_DOCUMENT_SWAGGER, "2.0")
        + _field(_DOCUMENT_INFO, info_message)
        + _field(_DOCUMENT_PATHS, paths)
    )


_cache: weakref.WeakKeyDictionary[Registry, tuple[int, bytes]] = weakref.WeakKeyDictionary()


def document(registry: Registry) -> bytes:
    """The encoded `openapi_v2.Document`; cached until the registry changes."""
    cached = _cache.get(registry)
    if cached is not None and cached[0] == registry.generation:
        return cached[1]
    encoded = _encode(registry)
    _cache[registry] = (registry.generation, encoded)
    return encoded
