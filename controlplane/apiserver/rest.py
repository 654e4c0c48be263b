"""The REST verbs on any resource: the write pipeline and the read paths.

A write goes decode -> check kind/apiVersion/namespace/name against the URL -> field validation
(Strict|Warn|Ignore) -> strategy (what this endpoint may change) -> defaulting -> mutating admission
(namespace lifecycle, the `admission` plugins) -> validation -> managedFields -> service IPs/ports
-> validating admission -> storage. A dry run stops before storage and releases what admission
allocated. Nothing here sees HTTP routing; the app module maps URLs onto these functions.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from aiohttp import web

from controlplane.api import decoding as decoding_checks
from controlplane.api import (
    defaults,
    errors,
    field_selectors,
    names,
    qos,
    schemas,
    selectors,
    strategy,
    uids,
    unknown_fields,
    validation,
)
from controlplane.api.patch import apply as ssa
from controlplane.api.patch import json_patch, managed_fields, merge_patch, strategic
from controlplane.api.patch._smp_json import json_copy
from controlplane.api.resources import CRD_GROUP, CRD_PLURAL, ResourceInfo
from controlplane.apiserver import admission, codec, output
from controlplane.apiserver.allocators import Allocation
from controlplane.apiserver.context import ServerContext, rfc3339
from controlplane.apiserver.crd import custom as crd_custom
from controlplane.apiserver.crd import definition as crd_definition
from controlplane.apiserver.requestinfo import RequestInfo
from controlplane.apiserver.store import ListPage

__all__ = [
    "ListOptions",
    "create",
    "delete",
    "delete_collection",
    "get",
    "list_objects",
    "list_options",
    "patch",
    "update",
]

MAX_UPDATE_RETRIES = 16


# ---------------------------------------------------------------------------------------------
# Query parameters


@dataclass(frozen=True)
class WriteOptions:
    dry_run: bool
    field_manager: str
    field_validation: str  # Strict | Warn | Ignore


@dataclass(frozen=True)
class ListOptions:
    label_selector: selectors.LabelSelector | None
    field_selector: selectors.FieldSelector | None
    limit: int
    continue_token: str
    resource_version: str
    resource_version_match: str
    timeout_seconds: int | None
    allow_bookmarks: bool
    send_initial_events: bool

    def latest_unpaged(self) -> ListOptions:
        """The same selection, as one consistent read of the latest state."""
        return dataclasses.replace(
            self,
            limit=0,
            continue_token="",
            resource_version="",
            resource_version_match="",
            timeout_seconds=None,
            allow_bookmarks=False,
            send_initial_events=False,
        )

    def matches(self, info: ResourceInfo, obj: dict[str, Any]) -> bool:
        if self.label_selector is not None and not self.label_selector.empty:
            labels = obj.get("metadata", {}).get("labels") or {}
            if not self.label_selector.matches(labels):
                return False
        if self.field_selector is not None:
            fields = field_selectors.object_fields(info.group, info.plural, obj)
            if not self.field_selector.matches(fields):
                return False
        return True


def write_options(request: web.Request, *, default_manager: str = "") -> WriteOptions:
    q = request.query
    dry_run_values = q.getall("dryRun", [])
    for value in dry_run_values:
        if value != "All":
            raise errors.BadRequest(message=f"Invalid dry run option value: {value}")
    validation_mode = q.get("fieldValidation", "") or "Warn"
    if validation_mode not in ("Strict", "Warn", "Ignore"):
        raise errors.BadRequest(
            message=f"fieldValidation parameter unsupported: {validation_mode}: "
            "valid values are Strict, Warn, Ignore"
        )
    manager = q.get("fieldManager", "")
    if len(manager) > 128:
        raise errors.BadRequest(message="fieldManager: Too long: may not be longer than 128")
    return WriteOptions(
        dry_run=bool(dry_run_values),
        field_manager=manager or default_manager or _manager_from_user_agent(request),
        field_validation=validation_mode,
    )


def _manager_from_user_agent(request: web.Request) -> str:
    """Upstream derives the default manager from the User-Agent's first token (`kubectl`, `kopf`...)."""
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/", 1)[0][:128] or "unknown"


def list_options(request: web.Request, info: ResourceInfo) -> ListOptions:
    q = request.query
    label_selector = selectors.parse_label_selector(q["labelSelector"]) if q.get("labelSelector") else None
    field_selector = None
    if q.get("fieldSelector"):
        field_selector = field_selectors.convert_field_selector(
            info.group, info.plural, selectors.parse_field_selector(q["fieldSelector"])
        )
    try:
        limit = int(q.get("limit", "0") or 0)
        timeout = int(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
    except ValueError as exc:
        raise errors.BadRequest(message=f"invalid query parameter: {exc}") from exc
    return ListOptions(
        label_selector=label_selector,
        field_selector=field_selector,
        limit=max(limit, 0),
        continue_token=q.get("continue", ""),
        resource_version=q.get("resourceVersion", ""),
        resource_version_match=q.get("resourceVersionMatch", ""),
        timeout_seconds=timeout,
        allow_bookmarks=q.get("allowWatchBookmarks", "") in ("true", "1"),
        send_initial_events=q.get("sendInitialEvents", "") in ("true", "1"),
    )


# ---------------------------------------------------------------------------------------------
# Reads


async def get(ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request) -> web.Response:
    rv = request.query.get("resourceVersion", "")
    if rv and rv != "0":
        _parse_rv(rv)
    out = output.negotiate(request.headers.get("Accept"), request.query.get("includeObject"))
    if out.shape == "object":
        # The stored bytes with the resourceVersion spliced in: no decode and re-encode.
        raw = await ctx.store.get_raw(info, ri.namespace, ri.name)
        return web.Response(body=raw + b"\n", content_type=codec.JSON)
    obj = await ctx.store.get(info, ri.namespace, ri.name)
    return respond_object(ctx, info, obj, request)


def respond_object(
    ctx: ServerContext,
    info: ResourceInfo,
    obj: dict[str, Any],
    request: web.Request,
    *,
    status: int = 200,
    warnings: list[str] | None = None,
) -> web.Response:
    out = output.negotiate(request.headers.get("Accept"), request.query.get("includeObject"))
    headers = warning_headers(warnings)
    if out.shape == "table":
        body = output.table(
            info,
            [obj],
            now=ctx.clock(),
            include_object=out.include_object,
            list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
        )
        return codec.json_response(body, status=status, headers=headers)
    if out.shape == "partial":
        return codec.json_response(output.partial_metadata(obj), status=status, headers=headers)
    return codec.json_response(obj, status=status, headers=headers)


def warning_headers(warnings: list[str] | None) -> dict[str, str] | None:
    if not warnings:
        return None

    # aiohttp headers are a multidict; joining keeps one header with comma-separated warnings,
    # which is how RFC 7234 allows several warn-values.
    # Quotes inside the warn-text are backslash-escaped, as upstream's NewWarningHeader does.
    def quoted(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"')

    return {"Warning": ", ".join(f'299 - "{quoted(w)}"' for w in warnings)}


def _parse_rv(value: str) -> int:
    try:
        rv = int(value)
    except ValueError as exc:
        raise errors.BadRequest(message=f"invalid resource version: {value}") from exc
    if rv < 0:
        raise errors.BadRequest(message=f"invalid resource version: {value}")
    return rv


def encode_continue(revision: int, last_key: str, prefix: str) -> str:
    payload = {"v": "meta.k8s.io/v1", "rv": revision, "start": last_key[len(prefix) :] + "\x00"}
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def decode_continue(token: str, prefix: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = orjson.loads(base64.urlsafe_b64decode(padded))
        if payload.get("v") != "meta.k8s.io/v1":
            raise ValueError("version")
        start = str(payload["start"])
        rv = int(payload["rv"])
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise errors.BadRequest(
            message="continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ) from exc
    if not start.endswith("\x00") or rv <= 0:
        raise errors.BadRequest(
            message="continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        )
    return rv, prefix + start[:-1]


EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)


async def read_list(
    ctx: ServerContext, info: ResourceInfo, namespace: str | None, opts: ListOptions
) -> ListPage:
    prefix = info.list_prefix(namespace)
    revision: int | None = None
    start_after = ""
    if opts.continue_token:
        if opts.resource_version and opts.resource_version != "0":
            raise errors.BadRequest(message="specifying resource version is not allowed when using continue")
        revision, start_after = decode_continue(opts.continue_token, prefix)
        if revision <= await ctx.store.compacted_revision():
            raise errors.Expired(message=EXPIRED_CONTINUE)
    elif opts.resource_version and opts.resource_version != "0":
        rv = _parse_rv(opts.resource_version)
        current = await ctx.store.current_revision()
        if opts.resource_version_match == "Exact":
            revision = rv
        elif rv > current:
            raise errors.Timeout(
                message=f"Too large resource version: {rv}, current: {current}",
                retry_after=1,
            )
    predicate = None
    if opts.label_selector is not None or opts.field_selector is not None:

        def predicate(obj: dict[str, Any]) -> bool:
            return opts.matches(info, obj)

    try:
        return await ctx.store.list(
            info, namespace, revision=revision, limit=opts.limit, start_after=start_after, predicate=predicate
        )
    except errors.Expired as exc:
        if opts.continue_token:
            raise errors.Expired(message=EXPIRED_CONTINUE) from exc
        raise


async def list_objects(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.Response:
    opts = list_options(request, info)
    namespace = ri.namespace or None
    page = await read_list(ctx, info, namespace, opts)
    meta: dict[str, Any] = {"resourceVersion": str(page.revision)}
    if page.more:
        meta["continue"] = encode_continue(page.revision, page.last_key, info.list_prefix(namespace))
        if page.remaining:
            meta["remainingItemCount"] = page.remaining
    out = output.negotiate(request.headers.get("Accept"), request.query.get("includeObject"))
    if out.shape == "table":
        body = output.table(
            info, page.items, now=ctx.clock(), include_object=out.include_object, list_meta=meta
        )
        return codec.json_response(body)
    if out.shape == "partial":
        return codec.json_response(
            {
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": [output.partial_metadata(o) for o in page.items],
            }
        )
    if opts.label_selector is None and opts.field_selector is None:
        # A plain list is the stored bytes of each object, joined: no per-object decode.
        head = orjson.dumps({"kind": info.list_kind, "apiVersion": info.api_version, "metadata": meta})
        raw_body = head[:-1] + b',"items":[' + b",".join(page.raw_items()) + b"]}\n"
        return web.Response(body=raw_body, content_type=codec.JSON)
    return codec.json_response(
        {"kind": info.list_kind, "apiVersion": info.api_version, "metadata": meta, "items": page.items}
    )


# ---------------------------------------------------------------------------------------------
# Body checks shared by create and update


BODY_TYPES = (codec.JSON, "application/yaml", codec.PROTOBUF)


def _decode_object(raw: bytes, request: web.Request, info: ResourceInfo) -> dict[str, Any]:
    # A missing Content-Type is read as JSON; anything else must be a type we decode.
    content_type = codec.media_type(request.headers.get("Content-Type")) or codec.JSON
    if content_type not in BODY_TYPES:
        raise errors.UnsupportedMediaType(
            message=f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(BODY_TYPES)}"
        )
    body = codec.decode_body(raw, content_type, api_version=info.api_version, kind=info.kind)
    if not isinstance(body, dict):
        raise errors.BadRequest(
            message="the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
        )
    if content_type == codec.JSON and request.query.get("fieldValidation") == "Strict":
        duplicates = codec.duplicate_fields(raw)
        if duplicates:
            fields = ", ".join(f'duplicate field "{path}"' for path in duplicates)
            raise errors.BadRequest(
                message=f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
                f"strict decoding error: {fields}"
            )
    return body


def _check_type(info: ResourceInfo, obj: dict[str, Any], *, subresource: str = "") -> None:
    """Default kind/apiVersion from the URL; refuse a body of another type."""
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if kind is None and api_version is None:
        obj["apiVersion"] = info.api_version
        obj["kind"] = info.kind
        return
    if not isinstance(kind, str) or not isinstance(api_version, str):
        raise errors.BadRequest(message="Object 'Kind' is missing in the request body")
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    if kind == "" or api_version == "":
        obj.setdefault("apiVersion", info.api_version)
        if not kind:
            obj["kind"] = info.kind
        if not api_version:
            obj["apiVersion"] = info.api_version
        return
    if kind != info.kind or group != info.group:
        raise errors.BadRequest(
            message=f"the API version in the data ({api_version}) does not match the expected API version "
            f"({info.api_version})"
            if kind == info.kind
            else f'{kind} in version "{api_version.rsplit("/", 1)[-1]}" cannot be handled as a {info.kind}: '
            f'no kind "{kind}" is registered for version "{api_version}" in scheme "pkg/api/legacyscheme/scheme.go:30"'
        )
    if api_version != info.api_version:
        # Same kind and group, other version: only the versions we serve are accepted.
        raise errors.BadRequest(
            message=f"the API version in the data ({api_version}) does not match the expected API version "
            f"({info.api_version})"
        )


def _check_metadata(info: ResourceInfo, obj: dict[str, Any], ri: RequestInfo) -> dict[str, Any]:
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise errors.BadRequest(message="metadata must be an object")
    if info.namespaced:
        namespace = meta.get("namespace") or ""
        if namespace and ri.namespace and namespace != ri.namespace:
            raise errors.BadRequest(
                message="the namespace of the provided object does not match the namespace sent on the request"
            )
        if not ri.namespace and not namespace:
            raise errors.BadRequest(message="the server could not find the requested resource")
        meta["namespace"] = ri.namespace or namespace
    else:
        meta.pop("namespace", None)
    return meta


def _field_validation(
    info: ResourceInfo, obj: dict[str, Any], mode: str, warnings: list[str], *, decoding: bool = False
) -> None:
    """What decoding into upstream's typed structs does: wrongly typed values are a 400, unknown
    fields are an error under Strict, a warning under Warn, and are dropped unless Strict refused
    them. `decoding`: the object is a request body (create, update), where upstream wraps strict
    errors as `<Kind> in version "<v>" cannot be handled as a <Kind>: ...`; patches are not."""
    schema = _schema_for(info)
    if info.custom:
        # Pruning happens whatever the mode (upstream prunes when decoding); only the report differs.
        unknown = crd_custom.prune(info, obj)
        if not unknown and schema is not None and info.extra.get("schema") is None:
            # No schema engine: report (not prune) what the CRD schema does not know.
            found = [] if mode == "Ignore" else unknown_fields.unknown_fields(obj, schema)
            unknown = [p for p in found if p.split(".", 1)[0] not in ("apiVersion", "kind", "metadata")]
    elif schema is None:
        return
    else:
        # One walk over the body: wrong types, unknown fields, and (unless Strict refuses them)
        # their removal, as decoding into upstream's typed structs does.
        unknown, mismatch = decoding_checks.inspect(obj, schema, prune=mode != "Strict")
        if mismatch is not None:
            raise decoding_checks.type_error(info.kind, info.version, mismatch)
    if unknown and mode != "Ignore":
        messages = [f'unknown field "{path}"' for path in unknown]
        if mode == "Strict":
            joined = messages[0] if len(messages) == 1 else ", ".join(messages)
            message = f"strict decoding error: {joined}"
            if decoding:
                message = (
                    f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: {message}'
                )
            raise errors.BadRequest(message=message)
        warnings.extend(messages)


def _schema_for(info: ResourceInfo) -> dict[str, Any] | None:
    if info.custom:
        schema = info.extra.get("openAPIV3Schema")
        return schema if isinstance(schema, dict) else None
    return schemas.definition_for(info.group, info.version, info.kind)


def _patch_schema(info: ResourceInfo) -> dict[str, Any] | None:
    if info.custom:
        # The CRD version's schema as apply types it (controlplane.api.crd.apply_schema).
        schema = info.extra.get("applySchema")
        return schema if isinstance(schema, dict) else None
    return schemas.definition_for(info.group, info.version, info.kind)


def _validate(info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    causes = validation.validate(info, obj, old)
    if info.custom:
        causes.extend(crd_custom.validate(info, obj, old))
    elif _is_crd(info):
        causes.extend(crd_definition.validate_crd(obj, old))
    if causes:
        raise errors.Invalid.for_object(
            info.kind, info.group, obj.get("metadata", {}).get("name", ""), causes
        )


async def _check_namespace(ctx: ServerContext, info: ResourceInfo, namespace: str, name: str) -> None:
    """NamespaceLifecycle admission: no content in a missing or terminating namespace."""
    if not info.namespaced:
        return
    ns_info = ctx.registry.get("", "v1", "namespaces")
    assert ns_info is not None
    ns = await ctx.store.get_shared(ns_info, "", namespace)
    if ns is None:
        raise errors.NotFound.for_object("namespaces", "", namespace)
    if ns.get("metadata", {}).get("deletionTimestamp") or ns.get("status", {}).get("phase") == "Terminating":
        raise errors.Forbidden(
            message=f'{info.group_resource} "{name}" is forbidden: unable to create new content in namespace '
            f"{namespace} because it is being terminated",
            name=name,
            kind=info.plural,
            group=info.group,
            causes=[
                errors.Cause(
                    "NamespaceTerminating",
                    f"namespace {namespace} is being terminated",
                    "metadata.namespace",
                )
            ],
        )


def _is_crd(info: ResourceInfo) -> bool:
    return info.group == CRD_GROUP and info.plural == CRD_PLURAL and not info.custom


def _kind_defaults(
    info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None, *, subresource: str = ""
) -> None:
    """Defaulting that is not a table of upstream's per-type defaulters: a custom resource's
    schema defaults, and the CRD strategy (status on create, stored versions on update)."""
    if info.custom:
        crd_custom.default(info, obj)
    elif _is_crd(info):
        if old is None:
            crd_definition.prepare_for_create(obj)
        elif subresource != "status":
            crd_definition.prepare_for_update(obj, old)


def _is_namespace(info: ResourceInfo) -> bool:
    return info.group == "" and info.plural == "namespaces"


def _is_service(info: ResourceInfo) -> bool:
    return info.group == "" and info.plural == "services"


# ---------------------------------------------------------------------------------------------
# Create


async def create(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.Response:
    opts = write_options(request)
    obj = _decode_object(await codec.read_body(request), request, info)
    warnings: list[str] = []
    created = await create_object(ctx, info, ri, obj, opts, warnings)
    return respond_object(ctx, info, created, request, status=201, warnings=warnings)


async def create_object(
    ctx: ServerContext,
    info: ResourceInfo,
    ri: RequestInfo,
    obj: dict[str, Any],
    opts: WriteOptions,
    warnings: list[str],
    *,
    managed: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    _check_type(info, obj)
    meta = _check_metadata(info, obj, ri)
    _field_validation(info, obj, opts.field_validation, warnings, decoding=managed is None)
    # Admission messages name the object as the request did (a generateName prefix, upstream).
    admission_name = str(meta.get("name") or meta.get("generateName") or "")
    if not meta.get("name"):
        prefix = meta.get("generateName")
        if prefix:
            meta["name"] = names.generate_name(prefix)
    if info.plural == "namespaces" and info.group == "":
        meta.pop("namespace", None)
    # NamespaceLifecycle admission runs before validation upstream: a missing namespace is a 404.
    await _check_namespace(ctx, info, meta.get("namespace", ""), meta.get("name", ""))
    if info.custom and info.extra.get("terminating"):
        # Upstream's custom resource handler, while its CRD is being deleted.
        raise errors.MethodNotSupported(
            message="create not allowed while custom resource definition is terminating",
            kind=info.plural,
            group=info.group,
        )
    strategy.prepare_for_create(info, obj)
    defaults.apply_defaults(info, obj)
    _kind_defaults(info, obj, None)
    meta["uid"] = uids.uuid4()
    meta["creationTimestamp"] = ctx.now()
    meta.pop("resourceVersion", None)
    meta.pop("deletionTimestamp", None)
    defaults.apply_create_defaults(info, obj)
    attrs = admission.Attributes(
        info, "CREATE", meta.get("namespace", ""), admission_name, dry_run=opts.dry_run, warnings=warnings
    )
    await ctx.admission.admit(ctx, attrs, obj, None)
    if info.group == "" and info.plural == "pods":
        # The pod strategy's PrepareForCreate runs after mutating admission (LimitRanger may have
        # added resources) and records the QoS class.
        obj.setdefault("status", {})["qosClass"] = qos.pod_qos_class(obj)
    _validate(info, obj, None)
    if managed is None:
        meta["managedFields"] = managed_fields.update(
            None,
            obj,
            manager=opts.field_manager,
            operation="Update",
            api_version=info.api_version,
            schema=_patch_schema(info),
            now=ctx.now(),
        )
    else:
        meta["managedFields"] = managed
    if not meta["managedFields"]:
        meta.pop("managedFields")
    allocation = Allocation()
    try:
        if _is_service(info):
            await ctx.services.on_create(obj, allocation)
        if attrs.name != meta.get("name", ""):  # generated just now
            attrs = dataclasses.replace(attrs, name=meta.get("name", ""))
        async with ctx.admission.validate(ctx, attrs, obj, None) as admitted:
            if opts.dry_run:
                return obj
            result = await ctx.store.create(info, obj)
            await admitted.committed()
        allocation.keys.clear()  # committed: the allocations now belong to the object
        return result
    finally:
        await allocation.release(ctx.storage)


# ---------------------------------------------------------------------------------------------
# Update and patch: both end in `write_update`


async def update(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.Response:
    opts = write_options(request)
    body = _decode_object(await codec.read_body(request), request, info)
    if ri.subresource in ("", "status"):
        _check_type(info, body)
    body_meta = _check_metadata(info, body, ri)
    if body_meta.get("name") and body_meta["name"] != ri.name:
        raise errors.BadRequest(
            message=f"the name of the object ({body_meta['name']}) does not match the name on the URL ({ri.name})"
        )
    body_meta["name"] = ri.name
    warnings: list[str] = []
    _field_validation(info, body, opts.field_validation, warnings, decoding=True)
    precondition = body_meta.get("resourceVersion") or ""
    # The first attempt takes the decoded body itself (nothing else holds it). Only a PUT
    # without a resourceVersion can be tried again, after a concurrent write (with one, that
    # write is a Conflict), so only it keeps a pristine copy: controllers and kubelets always
    # send one, and the copy had been the largest single cost of their PUTs.
    unused: list[dict[str, Any]] = [body]
    pristine = None if precondition else json_copy(body)

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        if precondition and precondition != current["metadata"].get("resourceVersion"):
            raise errors.Conflict.modified(info.plural, info.group, ri.name)
        if unused:
            return unused.pop()
        if pristine is None:
            # A retry of a PUT with a resourceVersion: the race it lost is a Conflict.
            raise errors.Conflict.modified(info.plural, info.group, ri.name)
        again: dict[str, Any] = json_copy(pristine)
        return again

    result, status = await write_update(ctx, info, ri, mutate, opts, warnings=warnings, replaces=True)
    return respond_object(ctx, info, result, request, status=status, warnings=warnings)


async def patch(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.Response:
    content_type = codec.media_type(request.content_type)
    if content_type not in codec.PATCH_TYPES:
        raise errors.UnsupportedMediaType(
            message=f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(_patch_types_for(info))}"
        )
    if content_type == codec.STRATEGIC_MERGE_PATCH and info.custom:
        raise errors.UnsupportedMediaType(
            message=f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(_patch_types_for(info))}"
        )
    raw = await codec.read_body(request)
    patch_body = codec.decode_body(raw, content_type)
    warnings: list[str] = []
    if content_type == codec.APPLY_PATCH_YAML:
        return await _apply(ctx, info, ri, request, patch_body, warnings)
    opts = write_options(request)
    schema = _patch_schema(info)

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        # `current` is the caller's private copy, so the patch is applied to it in place; the
        # patch body is never mutated (a retry applies it again).
        current_rv = current["metadata"].get("resourceVersion")
        if content_type == codec.JSON_PATCH:
            patched = json_patch.apply(current, patch_body, in_place=True)
        elif content_type == codec.MERGE_PATCH:
            patched = merge_patch.apply(current, patch_body, in_place=True)
        else:
            if not isinstance(patch_body, dict):
                raise errors.BadRequest(message="strategic merge patch must be a JSON object")
            patched = strategic.apply(current, patch_body, schema, in_place=True)
        if not isinstance(patched, dict):
            raise errors.BadRequest(message="patch produced a non-object result")
        # A patch may carry metadata.resourceVersion as a precondition (kopf, kubectl --resource-version).
        patched_meta = patched.setdefault("metadata", {})
        wanted = patched_meta.get("resourceVersion")
        if wanted and wanted != current_rv:
            raise errors.Conflict.modified(info.plural, info.group, ri.name)
        patched_meta["resourceVersion"] = current_rv
        if content_type != codec.JSON_PATCH or ri.subresource in ("", "status"):
            _check_type(info, patched)
        _field_validation(info, patched, opts.field_validation, warnings)
        return patched

    result, status = await write_update(ctx, info, ri, mutate, opts, warnings=warnings)
    return respond_object(ctx, info, result, request, status=status, warnings=warnings)


def _patch_types_for(info: ResourceInfo) -> list[str]:
    types = [codec.JSON_PATCH, codec.MERGE_PATCH, codec.APPLY_PATCH_YAML]
    if not info.custom:
        types.insert(2, codec.STRATEGIC_MERGE_PATCH)
    return types


async def write_update(
    ctx: ServerContext,
    info: ResourceInfo,
    ri: RequestInfo,
    mutate: Any,
    opts: WriteOptions,
    *,
    warnings: list[str],
    operation: str = "Update",
    managed: Any = None,
    admission_view: admission.SubresourceView | None = None,
    replaces: bool = False,
) -> tuple[dict[str, Any], int]:
    """Read, mutate, check, write; retry on a concurrent write (the mutate function raises
    Conflict itself when the client asked for a specific resourceVersion). `admission_view`:
    admission sees the subresource's own kind (scale) instead of the stored object. `replaces`:
    `mutate` only reads the stored object and returns a new one (a PUT), so it needs no copy."""
    for _ in range(MAX_UPDATE_RETRIES):
        if replaces:
            current = await ctx.store.get(info, ri.namespace, ri.name)
            candidate = mutate(current)
        else:
            # `mutate` gets a copy of its own: it may change it in place and keep parts of it.
            current, private = await ctx.store.get_twice(info, ri.namespace, ri.name)
            candidate = mutate(private)
        result = await _finish_update(
            ctx,
            info,
            ri,
            candidate,
            current,
            opts,
            operation=operation,
            managed=managed,
            warnings=warnings,
            admission_view=admission_view,
        )
        if result is not None:
            return result, 200
    raise errors.Conflict.modified(info.plural, info.group, ri.name)


async def _finish_update(
    ctx: ServerContext,
    info: ResourceInfo,
    ri: RequestInfo,
    new: dict[str, Any],
    old: dict[str, Any],
    opts: WriteOptions,
    *,
    operation: str,
    managed: Any,
    warnings: list[str] | None = None,
    admission_view: admission.SubresourceView | None = None,
) -> dict[str, Any] | None:
    """Returns None when the stored object moved underneath (the caller retries)."""
    subresource = ri.subresource if ri.subresource in ("status",) else ""
    new_meta = new.setdefault("metadata", {})
    old_meta = old["metadata"]
    new_meta["name"] = old_meta["name"]
    if info.namespaced:
        new_meta["namespace"] = old_meta.get("namespace", "")
    strategy.prepare_for_update(info, new, old, subresource=subresource)
    defaults.apply_defaults(info, new)
    _kind_defaults(info, new, old, subresource=subresource)
    attrs = admission.Attributes(
        info,
        "UPDATE",
        old_meta.get("namespace", ""),
        old_meta["name"],
        admission_view.subresource if admission_view is not None else subresource,
        opts.dry_run,
        warnings=warnings if warnings is not None else [],
        view=admission_view,
    )
    await ctx.admission.admit(ctx, attrs, new, old)
    if old_meta.get("deletionTimestamp"):
        added = set(new_meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        if added:
            raise errors.Invalid.for_object(
                info.kind,
                info.group,
                ri.name,
                [
                    errors.Cause(
                        errors.FIELD_VALUE_FORBIDDEN,
                        f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {sorted(added)!r}".replace(
                            "'", '"'
                        ),
                        "metadata.finalizers",
                    )
                ],
            )
    _validate(info, new, old)
    if managed is not None:
        new_meta["managedFields"] = managed(new, old)
    else:
        new_meta["managedFields"] = managed_fields.update(
            old,
            new,
            manager=opts.field_manager,
            operation=operation,
            subresource=subresource,
            api_version=info.api_version,
            schema=_patch_schema(info),
            now=ctx.now(),
        )
    if not new_meta["managedFields"]:
        new_meta.pop("managedFields")
    allocation = Allocation()
    released: list[int] = []
    try:
        if _is_service(info) and subresource == "":
            released = await ctx.services.on_update(new, old, allocation)
        async with ctx.admission.validate(ctx, attrs, new, old) as admitted:
            if _unchanged(new, old):
                allocation.keys.clear()
                return old
            if opts.dry_run:
                return new
            expected = int(old_meta["resourceVersion"])
            # The last finalizer gone from an object being deleted with no grace left: delete it now.
            # A namespace also waits for its spec.finalizers (the namespace controller's
            # `kubernetes`, removed through /finalize once its content is gone), as upstream.
            if (
                old_meta.get("deletionTimestamp")
                and not new_meta.get("finalizers")
                and int(old_meta.get("deletionGracePeriodSeconds") or 0) == 0
                and not (_is_namespace(info) and (new.get("spec") or {}).get("finalizers"))
            ):
                try:
                    result = await ctx.store.delete(info, ri.namespace, ri.name, expected_revision=expected)
                except errors.Conflict:
                    return None
                if _is_service(info):
                    await ctx.services.on_delete(result)
                return result
            try:
                result = await ctx.store.update(info, new, expected_revision=expected)
            except errors.Conflict:
                return None
            await admitted.committed()
        allocation.keys.clear()
        if released:
            await ctx.services.release_ports(released)
        return result
    finally:
        await allocation.release(ctx.storage)


def _unchanged(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """A no-op write keeps the resourceVersion, as upstream skips the storage write."""

    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        out = dict(obj)
        meta = dict(out.get("metadata", {}))
        meta.pop("resourceVersion", None)
        meta.pop("managedFields", None)
        out["metadata"] = meta
        return out

    if strip(new) != strip(old):
        return False
    # managedFields differences that are only timestamps do not count as a change.
    return _fields_only(new) == _fields_only(old)


def _fields_only(obj: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    return [
        (e.get("manager", ""), e.get("operation", ""), e.get("subresource", ""), e.get("fieldsV1"))
        for e in obj.get("metadata", {}).get("managedFields") or []
    ]


# ---------------------------------------------------------------------------------------------
# Server-side apply


async def _apply(
    ctx: ServerContext,
    info: ResourceInfo,
    ri: RequestInfo,
    request: web.Request,
    applied: Any,
    warnings: list[str],
) -> web.Response:
    q = request.query
    manager = q.get("fieldManager", "")
    if not manager:
        raise errors.BadRequest(
            message="PATCH, application/apply-patch+yaml requests must have a fieldManager parameter"
        )
    force_raw = q.get("force", "")
    if force_raw not in ("", "true", "false"):
        raise errors.BadRequest(message=f'invalid force value "{force_raw}"')
    force = force_raw == "true"
    opts = write_options(request, default_manager=manager)
    if not isinstance(applied, dict):
        raise errors.BadRequest(message="apply patch must be a YAML or JSON object")
    applied_meta = applied.get("metadata") or {}
    if not isinstance(applied_meta, dict):
        raise errors.BadRequest(message="metadata must be an object")
    if applied_meta.get("name") and applied_meta["name"] != ri.name:
        raise errors.BadRequest(
            message=f"the name of the object ({applied_meta['name']}) does not match the name on the URL ({ri.name})"
        )
    if not applied.get("apiVersion") or not applied.get("kind"):
        raise errors.BadRequest(message="apiVersion and kind must be set in an apply patch")
    applied = json_copy(applied)
    applied.setdefault("metadata", {})["name"] = ri.name
    _check_type(info, applied)
    _check_metadata(info, applied, ri)
    _field_validation(info, applied, opts.field_validation, warnings)
    schema = _patch_schema(info)
    subresource = ri.subresource if ri.subresource == "status" else ""
    for _ in range(MAX_UPDATE_RETRIES):
        current = await ctx.store.get_or_none(info, ri.namespace, ri.name)
        if current is None:
            if subresource:
                raise errors.NotFound.for_object(info.plural, info.group, ri.name)
            merged = ssa.apply(
                None,
                applied,
                manager=manager,
                force=force,
                api_version=info.api_version,
                schema=schema,
                now=ctx.now(),
            )
            managed = merged.get("metadata", {}).get("managedFields") or []
            try:
                created = await create_object(ctx, info, ri, merged, opts, warnings, managed=managed)
            except errors.AlreadyExists:
                continue
            return respond_object(ctx, info, created, request, status=201, warnings=warnings)
        merged = ssa.apply(
            json_copy(current),
            applied,
            manager=manager,
            force=force,
            api_version=info.api_version,
            schema=schema,
            now=ctx.now(),
            subresource=subresource,
        )
        managed_result = merged.get("metadata", {}).get("managedFields") or []
        result = await _finish_update(
            ctx,
            info,
            ri,
            merged,
            current,
            opts,
            operation="Apply",
            managed=lambda _new, _old, m=managed_result: m,
            warnings=warnings,
        )
        if result is not None:
            return respond_object(ctx, info, result, request, warnings=warnings)
    raise errors.Conflict.modified(info.plural, info.group, ri.name)


# ---------------------------------------------------------------------------------------------
# Delete


@dataclass
class DeleteOptions:
    grace_period: int | None = None
    propagation: str = ""
    orphan_dependents: bool | None = None
    precondition_uid: str = ""
    precondition_rv: str = ""
    dry_run: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


async def delete_options(request: web.Request) -> DeleteOptions:
    body: dict[str, Any] = {}
    raw = await codec.read_body(request)
    if raw.strip():
        decoded = codec.decode_body(
            raw, codec.media_type(request.content_type) or codec.JSON, api_version="v1", kind="DeleteOptions"
        )
        if not isinstance(decoded, dict):
            raise errors.BadRequest(message="DeleteOptions must be an object")
        body = decoded
    q = request.query
    opts = DeleteOptions()
    grace = body.get("gracePeriodSeconds", q.get("gracePeriodSeconds"))
    if grace is not None:
        try:
            opts.grace_period = int(grace)
        except (TypeError, ValueError) as exc:
            raise errors.BadRequest(message=f"invalid gracePeriodSeconds: {grace}") from exc
    opts.propagation = str(body.get("propagationPolicy") or q.get("propagationPolicy") or "")
    if opts.propagation and opts.propagation not in ("Orphan", "Background", "Foreground"):
        raise errors.Invalid(
            message=f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
            f'"{opts.propagation}": supported values: "Foreground", "Background", "Orphan", "nil"',
            causes=[
                errors.Cause(
                    errors.FIELD_VALUE_NOT_SUPPORTED,
                    f'Unsupported value: "{opts.propagation}": supported values: "Foreground", "Background", "Orphan", "nil"',
                    "propagationPolicy",
                )
            ],
        )
    orphan = body.get("orphanDependents", q.get("orphanDependents"))
    if orphan is not None:
        opts.orphan_dependents = orphan in (True, "true")
        if opts.propagation:
            raise errors.Invalid(
                message='DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: '
                '"": orphanDependents and deletionPropagation cannot be both set',
                causes=[
                    errors.Cause(
                        errors.FIELD_VALUE_INVALID,
                        "orphanDependents and deletionPropagation cannot be both set",
                        "propagationPolicy",
                    )
                ],
            )
    pre = body.get("preconditions") or {}
    opts.precondition_uid = str(pre.get("uid") or "")
    opts.precondition_rv = str(pre.get("resourceVersion") or "")
    dry = body.get("dryRun") or q.getall("dryRun", [])
    opts.dry_run = bool(dry)
    return opts


def _grace_for(info: ResourceInfo, obj: dict[str, Any], requested: int | None) -> int:
    """Only pods delete gracefully (upstream: podStrategy.CheckGracefulDelete)."""
    if not (info.group == "" and info.plural == "pods"):
        return 0
    spec = obj.get("spec", {})
    if not spec.get("nodeName"):
        return 0  # never scheduled: nothing to stop
    if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(requested, 0)
    return int(spec.get("terminationGracePeriodSeconds", 30))


def _gc_finalizers(
    ctx: ServerContext, info: ResourceInfo, obj: dict[str, Any], opts: DeleteOptions
) -> list[str]:
    """Finalizers the garbage collector acts on (upstream deletionFinalizersForGarbageCollection)."""
    if not ctx.garbage_collection:
        return []
    existing = obj.get("metadata", {}).get("finalizers") or []
    if opts.propagation == "Orphan" or opts.orphan_dependents is True:
        wanted = "orphan"
    elif opts.propagation == "Foreground":
        wanted = "foregroundDeletion"
    elif opts.propagation == "Background" or opts.orphan_dependents is False:
        # An explicit Background removes the GC finalizers an earlier delete may have added.
        return [f for f in existing if f not in ("orphan", "foregroundDeletion")]
    else:
        return list(existing)
    other = "foregroundDeletion" if wanted == "orphan" else "orphan"
    out = [f for f in existing if f != other]
    if wanted not in out:
        out.append(wanted)
    return out


async def delete(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.Response:
    opts = await delete_options(request)
    warnings: list[str] = []
    result, _deleted = await delete_object(ctx, info, ri.namespace, ri.name, opts, warnings=warnings)
    return respond_object(ctx, info, result, request, warnings=warnings)


async def delete_object(
    ctx: ServerContext,
    info: ResourceInfo,
    namespace: str,
    name: str,
    opts: DeleteOptions,
    *,
    warnings: list[str] | None = None,
    admit: bool = True,
) -> tuple[dict[str, Any], bool]:
    """Returns (object, fully deleted?). Admission webhooks' warnings are added to `warnings`;
    `admit=False` for a deletion admitted as something else (a pod's eviction)."""
    for _ in range(MAX_UPDATE_RETRIES):
        current = await ctx.store.get(info, namespace, name)
        meta = current["metadata"]
        if opts.precondition_uid and opts.precondition_uid != meta.get("uid"):
            raise errors.Conflict(
                message=f"Precondition failed: UID in precondition: {opts.precondition_uid}, UID in object meta: {meta.get('uid')}",
                name=name,
                group=info.group,
                kind=info.plural,
            )
        if opts.precondition_rv and opts.precondition_rv != meta.get("resourceVersion"):
            raise errors.Conflict(
                message=f"Precondition failed: ResourceVersion in precondition: {opts.precondition_rv}, "
                f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
                name=name,
                group=info.group,
                kind=info.plural,
            )
        delete_attrs = admission.Attributes(
            info,
            "DELETE",
            namespace,
            name,
            dry_run=opts.dry_run,
            warnings=[] if warnings is None else warnings,
        )
        if admit:
            await ctx.admission.admit_delete(ctx, delete_attrs, current)
        grace = _grace_for(info, current, opts.grace_period)
        finalizers = _gc_finalizers(ctx, info, current, opts)
        expected = int(meta["resourceVersion"])
        if _is_crd(info) and not meta.get("deletionTimestamp"):
            # A CRD goes only after its objects: the first delete marks it (cleanup finalizer,
            # Terminating condition) and the server's CRD finalizer controller does the rest.
            marked = crd_definition.mark_for_deletion(current, ctx.now())
            if finalizers:
                marked["metadata"]["finalizers"] = list(
                    dict.fromkeys([*finalizers, *marked["metadata"]["finalizers"]])
                )
            if opts.dry_run:
                return marked, False
            try:
                return await ctx.store.update(info, marked, expected_revision=expected), False
            except errors.Conflict:
                continue
        if info.group == "" and info.plural == "namespaces":
            finalizers_in_spec = current.get("spec", {}).get("finalizers") or []
            if finalizers_in_spec or finalizers:
                updated = json_copy(current)
                umeta = updated["metadata"]
                if not umeta.get("deletionTimestamp"):
                    umeta["deletionTimestamp"] = ctx.now()
                    umeta["deletionGracePeriodSeconds"] = 0
                umeta["finalizers"] = finalizers
                if not finalizers:
                    umeta.pop("finalizers")
                updated.setdefault("status", {})["phase"] = "Terminating"
                if opts.dry_run:
                    return updated, False
                try:
                    return await ctx.store.update(info, updated, expected_revision=expected), False
                except errors.Conflict:
                    continue
        if finalizers or grace > 0:
            updated = json_copy(current)
            umeta = updated["metadata"]
            now = ctx.clock()
            if not umeta.get("deletionTimestamp"):
                umeta["deletionTimestamp"] = rfc3339(now + timedelta(seconds=grace))
                umeta["deletionGracePeriodSeconds"] = grace
            elif grace < int(umeta.get("deletionGracePeriodSeconds") or 0):
                # A shorter grace period may shorten an ongoing graceful deletion, never lengthen it.
                umeta["deletionTimestamp"] = rfc3339(now + timedelta(seconds=grace))
                umeta["deletionGracePeriodSeconds"] = grace
            if finalizers:
                umeta["finalizers"] = finalizers
            else:
                umeta.pop("finalizers", None)
            if opts.dry_run:
                return updated, False
            if updated == current:
                return current, False
            try:
                return await ctx.store.update(info, updated, expected_revision=expected), False
            except errors.Conflict:
                continue
        if opts.dry_run:
            return current, True
        try:
            result = await ctx.store.delete(info, namespace, name, expected_revision=expected)
        except errors.Conflict:
            continue
        if _is_service(info):
            await ctx.services.on_delete(result)
        return result, True
    raise errors.Conflict.modified(info.plural, info.group, name)


async def delete_collection(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.Response:
    opts = await delete_options(request)
    list_opts = list_options(request, info)
    page = await read_list(
        ctx,
        info,
        ri.namespace or None,
        list_opts.latest_unpaged(),
    )
    deleted: list[dict[str, Any]] = []
    warnings: list[str] = []
    for obj in page.items:
        meta = obj["metadata"]
        try:
            result, _ = await delete_object(
                ctx, info, meta.get("namespace", ""), meta["name"], opts, warnings=warnings
            )
        except errors.NotFound:
            continue
        deleted.append(result)
    return codec.json_response(
        {
            "kind": info.list_kind,
            "apiVersion": info.api_version,
            "metadata": {"resourceVersion": str(page.revision)},
            "items": deleted,
        },
        # One warning per text, as upstream's request-scoped warning recorder keeps them.
        headers=warning_headers(list(dict.fromkeys(warnings))),
    )
