"""Bodies in and out: JSON (orjson) and YAML decoding, content types, Status encoding.

Errors are translated here, once: a body that does not parse is a 400 with upstream's wording,
one over the size limit a 413. Every JSON response ends with a newline, as Go's encoder writes it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import yaml
from aiohttp import web

from controlplane.api import errors, protobuf

__all__ = [
    "JSON",
    "MAX_BODY_BYTES",
    "PATCH_TYPES",
    "decode_body",
    "encode",
    "json_response",
    "media_type",
    "status_response",
]

JSON = "application/json"
MAX_BODY_BYTES = 3 * 1024 * 1024  # upstream's default max request body (3 MiB)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH_YAML = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH_YAML)


def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type header, lower-cased ('' when absent)."""
    if not header:
        return ""
    return header.split(";", 1)[0].strip().lower()


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


def json_response(obj: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=encode(obj), status=status, content_type=JSON, headers=headers)


def status_response(err: errors.StatusError, *, headers: dict[str, str] | None = None) -> web.Response:
    extra = dict(headers or {})
    if err.retry_after is not None:
        extra["Retry-After"] = str(err.retry_after)
    return web.Response(body=encode(err.to_status()), status=err.code, content_type=JSON, headers=extra)


async def read_body(request: web.Request) -> bytes:
    """The raw body, refusing anything over the limit before reading it all."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise errors.RequestEntityTooLarge(message="Request entity too large: limit is 3145728")
    if length is not None and "Content-Encoding" not in request.headers:
        # The usual case (a plain Content-Length body, already buffered): one read, no chunk
        # loop. A compressed body is read as it decompresses: its length is not the header's.
        try:
            return await request.content.readexactly(length)
        except asyncio.IncompleteReadError as exc:  # the client went away mid-body
            return exc.partial
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise errors.RequestEntityTooLarge(message="Request entity too large: limit is 3145728")
    return bytes(data)


PROTOBUF = "application/vnd.kubernetes.protobuf"


def decode_body(raw: bytes, content_type: str, *, api_version: str = "", kind: str = "") -> Any:
    """Decode a request body as JSON, as YAML for the YAML media types, or as Kubernetes protobuf
    (kubectl 1.32+ sends typed-client bodies that way). `api_version`/`kind` name the endpoint's
    type, used when a protobuf envelope leaves them out and in its error messages."""
    if content_type == PROTOBUF:
        return protobuf.decode_object(raw, default_api_version=api_version, default_kind=kind)
    if not raw.strip():
        raise errors.BadRequest(
            message="the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
        )
    if content_type in ("application/yaml", APPLY_PATCH_YAML) and not raw.lstrip().startswith((b"{", b"[")):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise errors.BadRequest(message=f"error converting YAML to JSON: {_yaml_problem(exc)}") from exc
    if content_type == APPLY_PATCH_CBOR:
        raise errors.UnsupportedMediaType(
            message=f"the body of the request was in an unknown format - accepted media types include: {JSON}"
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if content_type in ("application/yaml", APPLY_PATCH_YAML):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError:
                pass
        raise errors.BadRequest(
            message=f"couldn't get version/kind; json parse error: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"yaml: line {mark.line + 1}: {problem}"
    return f"yaml: {problem}"


def duplicate_fields(raw: bytes) -> list[str]:
    """Paths of object keys that appear twice in a JSON body (`metadata.labels.a`), which strict
    decoding refuses. orjson keeps the last silently, so this parses again with the stdlib; it runs
    only for fieldValidation=Strict requests."""
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, _Pairs):
            seen: set[str] = set()
            for key, item in value:
                here = f"{path}.{key}" if path else key
                if key in seen:
                    found.append(here)
                seen.add(key)
                walk(item, here)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    try:
        walk(json.loads(raw, object_pairs_hook=_Pairs), "")
    except ValueError:
        return []  # not JSON (YAML or protobuf): the decoder in use reports its own errors
    return found


class _Pairs(list[tuple[str, Any]]):
    """An object's key/value pairs in order, duplicates kept."""
