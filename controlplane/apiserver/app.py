"""The aiohttp application: routing, the request pipeline and the non-resource endpoints.

Pipeline per request: in-flight limit -> authenticate -> audit -> impersonate -> authorize ->
handler (decode, admission, validation, storage, encode). Every exception leaves as a Kubernetes
Status; an unexpected one is logged with its traceback server-side and reaches the client as a 500
InternalError without it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import prometheus_client
from aiohttp import web
from multidict import MultiDict

from controlplane.api import errors
from controlplane.apiserver import (
    admission,
    audit,
    authn,
    authz,
    codec,
    discovery,
    impersonation,
    metrics,
    openapi,
    openapi_v2,
    requestinfo,
    rest,
    subresources,
    watch,
)
from controlplane.apiserver.context import ServerContext

__all__ = ["VERSION_INFO", "AppSettings", "create_app"]

log = logging.getLogger("pinnace.apiserver")

VERSION_INFO = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-pinnace.0.1.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-26T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

ANONYMOUS_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/version"})

CTX = web.AppKey("ctx", ServerContext)


@dataclass
class AppSettings:
    authenticator: authn.Authenticator | None
    authorizer: authz.Authorizer
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    ready: Callable[[], bool] = lambda: True
    auditor: audit.Auditor | None = None


SETTINGS = web.AppKey("settings", AppSettings)
REQUEST_INFO = web.RequestKey("ri", requestinfo.RequestInfo)
USER = web.RequestKey("user", authn.UserInfo)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(ctx: ServerContext, settings: AppSettings) -> web.Application:
    app = web.Application(
        middlewares=[
            _status_errors,
            _inflight(settings),
            audit.failed_authentication(settings.auditor, user_key=USER, info_key=REQUEST_INFO),
            _authenticate(settings),
            audit.middleware(settings.auditor, user_key=USER, info_key=REQUEST_INFO),
            impersonation.middleware(settings.authorizer, user_key=USER),
            _authorize(settings),
        ],
        client_max_size=codec.MAX_BODY_BYTES + 1024,
        handler_args={"max_field_size": 65536},
    )
    app[CTX] = ctx
    app[SETTINGS] = settings
    app.on_response_prepare.append(audit.on_response_prepare)
    app.router.add_get("/version", _version)
    app.router.add_get("/livez", _health)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/readyz", _ready)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api", _api)
    app.router.add_get("/apis", _apis)
    app.router.add_get("/openapi/v2", _openapi_v2)
    app.router.add_get("/swagger-2.0.0.pb-v1", _openapi_v2)
    app.router.add_get("/openapi/v3", _openapi_v3_root)
    app.router.add_get("/openapi/v3/{path:.+}", _openapi_v3_gv)
    app.router.add_route("*", "/api/{tail:.*}", _resource)
    app.router.add_route("*", "/apis/{tail:.*}", _resource)
    return app


# ---------------------------------------------------------------------------------------------
# Middleware


@web.middleware
async def _status_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    ri: requestinfo.RequestInfo = requestinfo.parse(
        request.method, request.path, watch_param=request.query.get("watch", "") in ("true", "1")
    )
    request[REQUEST_INFO] = ri
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except errors.StatusError as exc:
        code = exc.code
        return codec.status_response(exc)
    except web.HTTPException as exc:
        code = exc.status
        if exc.status == 404:
            return codec.status_response(
                errors.NotFound(message="the server could not find the requested resource")
            )
        if exc.status == 405:
            return codec.status_response(
                errors.MethodNotSupported(
                    message="the server does not allow this method on the requested resource"
                )
            )
        if exc.status == 413:
            return codec.status_response(
                errors.RequestEntityTooLarge(message="Request entity too large: limit is 3145728")
            )
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        code = 499
        raise
    except Exception:
        log.exception("internal error serving %s %s", request.method, request.path)
        return codec.status_response(
            errors.InternalError(
                message="Internal error occurred: an unexpected error was logged by the server"
            )
        )
    finally:
        if ri.is_resource_request:
            # Label only what is served: client-chosen paths must not mint new series.
            info = request.app[CTX].registry.get(ri.group, ri.version, ri.resource)
            served = info is not None
            resource = ri.resource if served else "unknown"
            sub = ri.subresource if info is not None and info.subresource(ri.subresource) else ""
            metrics.request_counter(
                ri.verb.upper(), ri.group if served else "", resource, sub, str(code)
            ).inc()
            if ri.verb != "watch":
                metrics.request_duration(ri.verb.upper(), ri.group if served else "", resource, sub).observe(
                    time.perf_counter() - started
                )


# Upstream's long-running request check: these stream for as long as the client wants and would
# otherwise hold an in-flight slot each (`kubectl logs -f`).
LONG_RUNNING_SUBRESOURCES = frozenset({"log", "exec", "attach", "portforward", "proxy"})


def _inflight(settings: AppSettings) -> Any:
    limits = {"readOnly": settings.max_requests_inflight, "mutating": settings.max_mutating_requests_inflight}
    current = {"readOnly": 0, "mutating": 0}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        ri: requestinfo.RequestInfo = request[REQUEST_INFO]
        if (
            ri.verb == "watch"
            or ri.subresource in LONG_RUNNING_SUBRESOURCES
            or request.path in ANONYMOUS_PATHS
        ):
            return await handler(request)  # long-running and health requests are not limited, as upstream
        kind = "readOnly" if request.method in ("GET", "HEAD") else "mutating"
        if current[kind] >= limits[kind]:
            raise errors.TooManyRequests(message="Too many requests, please try again later.", retry_after=1)
        current[kind] += 1
        metrics.inflight(kind).set(current[kind])
        try:
            return await handler(request)
        finally:
            current[kind] -= 1
            metrics.inflight(kind).set(current[kind])

    return middleware


def _authenticate(settings: AppSettings) -> Any:
    authenticator = (
        authn.AnonymousAuthenticator(settings.authenticator) if settings.authenticator is not None else None
    )

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if authenticator is None:
            request[USER] = authn.UserInfo(name="system:anonymous", groups=("system:unauthenticated",))
            return await handler(request)
        try:
            user = await authn.require_user(authenticator, request)
        except errors.Unauthorized:
            metrics.AUTH_FAILURES.inc()
            raise
        request[USER] = user
        # Admission webhooks send the requester as userInfo; a context variable carries it there.
        admission.REQUEST_USER.set(
            {
                "username": user.name,
                "uid": user.uid,
                "groups": list(user.groups),
                "extra": {k: list(v) for k, v in user.extra.items()},
            }
        )
        return await handler(request)

    return middleware


def _authorize(settings: AppSettings) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in ANONYMOUS_PATHS:
            return await handler(request)
        ri: requestinfo.RequestInfo = request[REQUEST_INFO]
        field_selector = request.query.get("fieldSelector", "")
        name = ri.name
        if not name and field_selector and ri.verb in ("list", "watch"):
            name = requestinfo.name_from_field_selector(field_selector)
        attrs = authz.Attributes(
            user=request[USER],
            verb=ri.verb,
            api_group=ri.group,
            resource=ri.resource,
            subresource=ri.subresource,
            namespace=ri.namespace,
            name=name,
            path=request.path,
            resource_request=ri.is_resource_request,
            field_selector=field_selector,
        )
        decision = await settings.authorizer.authorize(attrs)
        audit.record_decision(request, decision)
        if not decision.allowed:
            raise authz.forbidden_error(attrs, decision.reason)
        return await handler(request)

    return middleware


# ---------------------------------------------------------------------------------------------
# Non-resource endpoints


async def _version(request: web.Request) -> web.Response:
    return codec.json_response(VERSION_INFO)


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok", content_type="text/plain")


async def _ready(request: web.Request) -> web.Response:
    if not request.app[SETTINGS].ready():
        return web.Response(
            status=500,
            text="[-]shutdown failed: process is shutting down\nreadyz check failed",
            content_type="text/plain",
        )
    return web.Response(text="ok", content_type="text/plain")


async def _metrics(request: web.Request) -> web.Response:
    body = prometheus_client.generate_latest()
    return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})


def _discovery_response(
    request: web.Request, *, core: bool, legacy: Callable[[], dict[str, Any]]
) -> web.Response:
    ctx = request.app[CTX]
    version = discovery.negotiate_aggregated(request.headers.get("Accept", ""))
    if version is not None:
        body = discovery.aggregated(ctx.registry, core=core, version=version)
        return web.Response(
            body=codec.encode(body),
            headers={"Content-Type": discovery.aggregated_content_type(version), "Vary": "Accept"},
        )
    return codec.json_response(legacy(), headers={"Vary": "Accept"})


async def _api(request: web.Request) -> web.Response:
    return _discovery_response(request, core=True, legacy=lambda: discovery.api_versions(request.host))


async def _apis(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return _discovery_response(request, core=False, legacy=lambda: discovery.api_group_list(ctx.registry))


async def _openapi_v2(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return web.Response(
        body=openapi_v2.document(ctx.registry),
        headers={"Content-Type": openapi_v2.OPENAPI_V2_CONTENT_TYPE},
    )


async def _openapi_v3_root(request: web.Request) -> web.Response:
    return codec.json_response(openapi.v3_root(request.app[CTX].registry))


async def _openapi_v3_gv(request: web.Request) -> web.Response:
    path = request.match_info["path"]
    parts = path.split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        raise errors.NotFound(message="the server could not find the requested resource")
    found = openapi.v3_group_version_bytes(request.app[CTX].registry, group, version)
    if found is None:
        raise errors.NotFound(message="the server could not find the requested resource")
    body, digest = found
    headers = {"Etag": f'"{digest}"', "Content-Type": "application/json"}
    if request.query.get("hash") == digest:
        # Content-addressed URLs never change: let clients cache them for good.
        headers["Cache-Control"] = "public, immutable"
    else:
        headers["Cache-Control"] = "no-cache, private"
    if request.headers.get("If-None-Match") == f'"{digest}"':
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers)


# ---------------------------------------------------------------------------------------------
# Resources


async def _resource(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    ri: requestinfo.RequestInfo = request[REQUEST_INFO]
    if not ri.is_resource_request:
        return _group_discovery(ctx, request, ri)
    info = ctx.registry.get(ri.group, ri.version, ri.resource)
    if info is None:
        raise errors.NotFound(message="the server could not find the requested resource")
    if ri.namespace and not info.namespaced and ri.resource != "namespaces":
        raise errors.NotFound(message="the server could not find the requested resource")
    if info.namespaced is False and ri.resource != "namespaces" and ri.namespace:
        raise errors.NotFound(message="the server could not find the requested resource")
    if ri.subresource:
        if info.subresource(ri.subresource) is None:
            raise errors.NotFound(message="the server could not find the requested resource")
        return await subresources.serve(ctx, info, ri, request)
    if info.plural == "namespaces" and info.group == "":
        ri = requestinfo.RequestInfo(**{**ri.__dict__, "namespace": ""})
    method = request.method
    if ri.name:
        if method in ("GET", "HEAD"):
            if ri.verb == "watch":
                return await _watch_single(ctx, info, ri, request)
            return await rest.get(ctx, info, ri, request)
        if method == "PUT":
            return await rest.update(ctx, info, ri, request)
        if method == "PATCH":
            return await rest.patch(ctx, info, ri, request)
        if method == "DELETE":
            return await rest.delete(ctx, info, ri, request)
        if method == "POST":
            raise errors.MethodNotSupported(
                message="the server does not allow this method on the requested resource"
            )
    else:
        if method in ("GET", "HEAD"):
            if ri.verb == "watch":
                return await watch.serve_watch(ctx, info, ri, request)
            return await rest.list_objects(ctx, info, ri, request)
        if method == "POST":
            if info.namespaced and not ri.namespace:
                raise errors.MethodNotSupported(
                    message="the server does not allow this method on the requested resource"
                )
            return await rest.create(ctx, info, ri, request)
        if method == "DELETE":
            return await rest.delete_collection(ctx, info, ri, request)
    raise errors.MethodNotSupported(message="the server does not allow this method on the requested resource")


async def _watch_single(
    ctx: ServerContext, info: Any, ri: requestinfo.RequestInfo, request: web.Request
) -> web.StreamResponse:
    """Legacy `/watch/<plural>/<name>` watches one object: a metadata.name field selector."""
    query = MultiDict(request.query)
    name_selector = f"metadata.name={ri.name}"
    query["fieldSelector"] = (
        f"{query['fieldSelector']},{name_selector}" if query.get("fieldSelector") else name_selector
    )
    cloned = request.clone(rel_url=request.rel_url.with_query(query))
    list_ri = requestinfo.RequestInfo(**{**ri.__dict__, "name": ""})
    return await watch.serve_watch(ctx, info, list_ri, cloned)


def _group_discovery(ctx: ServerContext, request: web.Request, ri: requestinfo.RequestInfo) -> web.Response:
    parts = [p for p in request.path.split("/") if p]
    if parts[0] == "api" and len(parts) == 2:
        doc = discovery.api_resource_list(ctx.registry, "", parts[1])
    elif parts[0] == "apis" and len(parts) == 2:
        doc = discovery.api_group(ctx.registry, parts[1])
    elif parts[0] == "apis" and len(parts) == 3:
        doc = discovery.api_resource_list(ctx.registry, parts[1], parts[2])
    else:
        doc = None
    if doc is None:
        raise errors.NotFound(message="the server could not find the requested resource")
    return codec.json_response(doc)
