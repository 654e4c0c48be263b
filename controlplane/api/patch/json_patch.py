"""JSON patch (RFC 6902, `application/json-patch+json`), including `test`.

Errors follow k8s.io/apiserver/pkg/endpoints/handlers/patch.go: a body that does not decode as a
list of operations is `400 BadRequest`; more than 10000 operations is `413`; any failure while
applying (a failed `test`, a missing path, a bad index, an unknown op) is
`NewGenericServerResponse(422, ...)`, i.e. reason `Invalid` with the fixed message below; the
detail is dropped from the response (upstream does the same) and kept as the exception's cause.
kopf relies on the failed-`test` 422 to retry its finalizer patches.
"""

from __future__ import annotations

import re
from typing import Any

from controlplane.api import errors
from controlplane.api.patch._smp_json import deep_copy, json_equal, json_kind

__all__ = ["MAX_OPERATIONS", "JSONPatchError", "apply"]

# maxJSONPatchOperations in the upstream handler.
MAX_OPERATIONS = 10000

# What apimachinery's NewGenericServerResponse says for 422 with no resource or name.
_UNPROCESSABLE = "the server rejected our request due to an error in our request"

_INDEX = re.compile(r"0|[1-9][0-9]*")


class JSONPatchError(Exception):
    """Why an operation could not be applied (the cause chained to the 422)."""


def apply(doc: dict[str, Any], patch: Any, *, in_place: bool = False) -> dict[str, Any]:
    """Apply the decoded patch body to a copy of `doc`; the input is never mutated and a failure
    leaves nothing half-applied. With `in_place` (for a caller whose `doc` is its own and that
    drops it on a failure) `doc` itself is changed. The patch is never mutated nor shared."""
    operations = _decode(patch)
    if len(operations) > MAX_OPERATIONS:
        raise errors.RequestEntityTooLarge(
            message=(
                "Request entity too large: The allowed maximum operations in a JSON patch is "
                f"{MAX_OPERATIONS}, got {len(operations)}"
            )
        )
    result: Any = doc if in_place else deep_copy(doc)
    try:
        for operation in operations:
            result = _apply_operation(result, operation)
        if not isinstance(result, dict):
            raise JSONPatchError(f"patched document is a JSON {json_kind(result)}, not an object")
    except JSONPatchError as exc:
        # Upstream's NewGenericServerResponse keeps the patch error as the one cause.
        raise errors.Invalid(
            message=_UNPROCESSABLE, causes=[errors.Cause(errors.UNEXPECTED_SERVER_RESPONSE, str(exc))]
        ) from exc
    return result


def _decode(patch: Any) -> list[dict[str, Any]]:
    # Mirrors json.Unmarshal into jsonpatch.Patch ([]map[string]*json.RawMessage): `null` is an
    # empty patch, a null element an empty operation (which then fails to apply).
    if patch is None:
        return []
    if not isinstance(patch, list):
        raise errors.BadRequest(
            message=f"json: cannot unmarshal {json_kind(patch)} into Go value of type jsonpatch.Patch"
        )
    operations: list[dict[str, Any]] = []
    for item in patch:
        if item is None:
            operations.append({})
        elif isinstance(item, dict):
            operations.append(item)
        else:
            raise errors.BadRequest(
                message=f"json: cannot unmarshal {json_kind(item)} into Go value of type jsonpatch.Operation"
            )
    return operations


def _apply_operation(doc: Any, operation: dict[str, Any]) -> Any:
    op = operation.get("op")
    if op == "add":
        return _add(doc, _pointer(operation, "path"), deep_copy(_value(operation)))
    if op == "remove":
        return _remove(doc, _pointer(operation, "path"))
    if op == "replace":
        return _replace(doc, _pointer(operation, "path"), deep_copy(_value(operation)))
    if op == "move":
        source, target = _pointer(operation, "from"), _pointer(operation, "path")
        if source == target:
            return doc
        if target[: len(source)] == source:
            raise JSONPatchError("move operation cannot move a value into one of its children")
        value = _get(doc, source)
        return _add(_remove(doc, source), target, value)
    if op == "copy":
        value = deep_copy(_get(doc, _pointer(operation, "from")))
        return _add(doc, _pointer(operation, "path"), value)
    if op == "test":
        path = _pointer(operation, "path")
        expected = _value(operation)
        if not json_equal(_get(doc, path), expected):
            raise JSONPatchError(f"testing value {operation.get('path')} failed")
        return doc
    raise JSONPatchError(f"Unexpected kind: {op if isinstance(op, str) else 'unknown'}")


def _value(operation: dict[str, Any]) -> Any:
    if "value" not in operation:
        raise JSONPatchError(f"{operation.get('op')} operation missing value field")
    return operation["value"]


def _pointer(operation: dict[str, Any], field: str) -> list[str]:
    """Parse an RFC 6901 JSON pointer into reference tokens."""
    path = operation.get(field)
    if not isinstance(path, str):
        raise JSONPatchError(f"operation missing {field} field")
    if path == "":
        return []
    if not path.startswith("/"):
        raise JSONPatchError(f"invalid JSON pointer {path!r}: must start with '/'")
    tokens = path[1:].split("/")
    for token in tokens:
        if re.search(r"~(?![01])", token):
            raise JSONPatchError(f"invalid JSON pointer {path!r}: bad escape")
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _index(token: str, length: int, *, allow_end: bool) -> int:
    if not _INDEX.fullmatch(token):
        raise JSONPatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > length or (index == length and not allow_end):
        raise JSONPatchError(f"array index out of bounds: {index}")
    return index


def _get(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise JSONPatchError(f"missing key {token!r}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), allow_end=False)]
        else:
            raise JSONPatchError(f"cannot descend into a JSON {json_kind(node)} at {token!r}")
    return node


def _parent(doc: Any, tokens: list[str]) -> tuple[dict[str, Any] | list[Any], str]:
    container = _get(doc, tokens[:-1])
    if not isinstance(container, dict | list):
        raise JSONPatchError(f"cannot address a member of a JSON {json_kind(container)}")
    return container, tokens[-1]


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    container, key = _parent(doc, tokens)
    if isinstance(container, dict):
        container[key] = value
    elif key == "-":
        container.append(value)
    else:
        container.insert(_index(key, len(container), allow_end=True), value)
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise JSONPatchError("cannot remove the whole document")
    container, key = _parent(doc, tokens)
    if isinstance(container, dict):
        if key not in container:
            raise JSONPatchError(f"Unable to remove nonexistent key: {key}")
        del container[key]
    else:
        del container[_index(key, len(container), allow_end=False)]
    return doc


def _replace(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    container, key = _parent(doc, tokens)
    if isinstance(container, dict):
        if key not in container:
            raise JSONPatchError(f"replace operation does not apply: doc is missing key: {key}")
        container[key] = value
    else:
        container[_index(key, len(container), allow_end=False)] = value
    return doc
