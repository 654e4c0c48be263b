"""`pods/log`: proxied to the kubelet of the pod's node, as kube-apiserver does.

The API server picks the container (the only one, or the one named), finds the node's kubelet
(`kubelet_client`), asks `GET https://<node>:<port>/containerLogs/<ns>/<pod>/<container>` with
the log options, and streams the answer back as text/plain until either side closes. The
kubelet's own refusals come back as upstream maps them (400 stays 400 with its text; others as a
generic server response naming `pods/log`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from controlplane.api import errors
from controlplane.api.resources import ResourceInfo
from controlplane.apiserver import kubelet_client
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.requestinfo import RequestInfo

__all__ = ["LogOptions", "choose_container", "kubelet_error", "parse_log_options", "serve"]

log = logging.getLogger("pinnace.apiserver.logs")

# How long a connect to a kubelet may take (upstream's kubelet client dials with 30 s).
CONNECT_TIMEOUT = 30.0
# How often an idle follow checks whether the client went away or the server is stopping.
IDLE_CHECK_INTERVAL = 1.0
# GenericHttpResponseChecker reads at most this much of a refusal's body.
MAX_ERROR_BODY = 50000

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True)
class LogOptions:
    """PodLogOptions as query parameters carry them."""

    container: str = ""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    since_seconds: int | None = None
    since_time: datetime | None = None
    tail_lines: int | None = None
    limit_bytes: int | None = None

    def kubelet_query(self) -> list[tuple[str, str]]:
        """The parameters upstream's LogLocation forwards, in its (sorted) order."""
        params: list[tuple[str, str]] = []
        if self.follow:
            params.append(("follow", "true"))
        if self.limit_bytes is not None:
            params.append(("limitBytes", str(self.limit_bytes)))
        if self.previous:
            params.append(("previous", "true"))
        if self.since_seconds is not None:
            params.append(("sinceSeconds", str(self.since_seconds)))
        if self.since_time is not None:
            params.append(("sinceTime", self.since_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
        if self.tail_lines is not None:
            params.append(("tailLines", str(self.tail_lines)))
        if self.timestamps:
            params.append(("timestamps", "true"))
        return params


def _bool(query: Mapping[str, str], key: str) -> bool:
    raw = query.get(key)
    if raw is None or raw == "":
        return False
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise errors.BadRequest(message=f'strconv.ParseBool: parsing "{raw}": invalid syntax')


def _int(query: Mapping[str, str], key: str) -> int | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw, 10)
    except ValueError as exc:
        raise errors.BadRequest(message=f'strconv.ParseInt: parsing "{raw}": invalid syntax') from exc


def parse_log_options(query: Mapping[str, str], pod_name: str) -> LogOptions:
    """Decode and validate (ValidatePodLogOptions) the query; 400 on undecodable, 422 on invalid."""
    since_time = None
    raw_time = query.get("sinceTime")
    if raw_time:
        try:
            since_time = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
        except ValueError as exc:
            raise errors.BadRequest(
                message=f'parsing time "{raw_time}" as "2006-01-02T15:04:05Z07:00": cannot parse "{raw_time}"'
            ) from exc
        if since_time.tzinfo is None:
            raise errors.BadRequest(
                message=f'parsing time "{raw_time}" as "2006-01-02T15:04:05Z07:00": missing time zone'
            )
    opts = LogOptions(
        container=query.get("container", ""),
        follow=_bool(query, "follow"),
        previous=_bool(query, "previous"),
        timestamps=_bool(query, "timestamps"),
        since_seconds=_int(query, "sinceSeconds"),
        since_time=since_time,
        tail_lines=_int(query, "tailLines"),
        limit_bytes=_int(query, "limitBytes"),
    )
    _bool(query, "insecureSkipTLSVerifyBackend")  # decoded for its errors; we never verify anyway
    causes: list[errors.Cause] = []
    if opts.tail_lines is not None and opts.tail_lines < 0:
        causes.append(
            errors.Cause(
                errors.FIELD_VALUE_INVALID,
                f"Invalid value: {opts.tail_lines}: must be greater than or equal to 0",
                "tailLines",
            )
        )
    if opts.limit_bytes is not None and opts.limit_bytes < 1:
        causes.append(
            errors.Cause(
                errors.FIELD_VALUE_INVALID,
                f"Invalid value: {opts.limit_bytes}: must be greater than 0",
                "limitBytes",
            )
        )
    if opts.since_seconds is not None and opts.since_time is not None:
        causes.append(
            errors.Cause(
                errors.FIELD_VALUE_FORBIDDEN,
                "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            )
        )
    elif opts.since_seconds is not None and opts.since_seconds < 1:
        causes.append(
            errors.Cause(
                errors.FIELD_VALUE_INVALID,
                f"Invalid value: {opts.since_seconds}: must be greater than 0",
                "sinceSeconds",
            )
        )
    if causes:
        parts = [f"{c.field}: {c.message}" for c in causes]
        joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        raise errors.Invalid(
            message=f'PodLogOptions "{pod_name}" is invalid: {joined}',
            name=pod_name,
            kind="PodLogOptions",
            causes=causes,
        )
    return opts


def _container_names(spec: dict[str, Any]) -> list[str]:
    """Every container a log may come from: init, regular and ephemeral (VisitContainers' order)."""
    names: list[str] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        names.extend(str(c.get("name", "")) for c in spec.get(key) or [] if isinstance(c, dict))
    return names


def choose_container(pod: dict[str, Any], requested: str) -> str:
    """validateContainer: the named one must exist; none named is fine only with one container.
    (kubectl applies the kubectl.kubernetes.io/default-container annotation before asking.)"""
    spec = pod.get("spec") or {}
    name = (pod.get("metadata") or {}).get("name", "")
    if requested:
        if requested not in _container_names(spec):
            raise errors.BadRequest(message=f"container {requested} is not valid for pod {name}")
        return requested
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    if len(containers) == 1:
        return str(containers[0].get("name", ""))
    if not containers:
        raise errors.BadRequest(message=f"a container name must be specified for pod {name}")
    raise errors.BadRequest(
        message=f"a container name must be specified for pod {name}, choose one of: [{' '.join(_container_names(spec))}]"
    )


def kubelet_error(status: int, body: str, pod_name: str) -> errors.StatusError:
    """GenericHttpResponseChecker: how a kubelet's refusal reaches the client."""
    if status == 400:
        return errors.BadRequest(message=body)
    if status == 500:
        return errors.InternalError(message=f"Internal error occurred: {body}")
    suffix = f" ( pods/log {pod_name})"
    generic: dict[int, tuple[type[errors.StatusError], str]] = {
        401: (errors.Unauthorized, "the server has asked for the client to provide credentials"),
        403: (errors.Forbidden, body),
        404: (errors.NotFound, "the server could not find the requested resource"),
        405: (errors.MethodNotSupported, "the server does not allow this method on the requested resource"),
        409: (errors.Conflict, "the server reported a conflict"),
        422: (errors.Invalid, "the server rejected our request due to an error in our request"),
        429: (
            errors.TooManyRequests,
            "the server has received too many requests and has asked us to try again later",
        ),
        503: (errors.ServiceUnavailable, "the server is currently unable to handle the request"),
        504: (
            errors.Timeout,
            "the server was unable to return a response in the time allotted, but may still be processing the request",
        ),
    }
    if status in generic:
        cls, message = generic[status]
        return cls(message=message + suffix, name=pod_name, kind="pods/log")
    message = f"the server responded with the status code {status} but did not return more information"
    if status >= 500:
        message = f'an error on the server ("{body}") has prevented the request from succeeding'
    error = kubelet_client.UnknownError(message=message + suffix, name=pod_name, kind="pods/log")
    return error


def _join_host_port(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def _dial_error(url: str, host_port: str, exc: BaseException) -> errors.StatusError:
    """Go's `Get "<url>": dial tcp <addr>: ...` wording for a kubelet that cannot be reached."""
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, ConnectionRefusedError) or isinstance(exc, ConnectionRefusedError):
        reason = f"dial tcp {host_port}: connect: connection refused"
    elif isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        reason = f"dial tcp {host_port}: i/o timeout"
    else:
        reason = str(exc) or type(exc).__name__
    return kubelet_client.UnknownError(message=f'Get "{url}": {reason}')


async def serve(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.StreamResponse:
    opts = parse_log_options(request.query, ri.name)
    pod = await ctx.store.get(info, ri.namespace, ri.name)
    container = choose_container(pod, opts.container)
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        # Upstream's LogLocation has no location for an unscheduled pod: an empty answer.
        return web.Response(status=204)
    node_info = ctx.registry.get("", "v1", "nodes")
    assert node_info is not None
    node = await ctx.store.get(node_info, "", str(node_name))
    host, port = kubelet_client.kubelet_address(node)
    host_port = _join_host_port(host, port)
    url = f"https://{host_port}/containerLogs/{ri.namespace}/{ri.name}/{container}"
    query = opts.kubelet_query()
    shown_url = url + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    tls = ctx.kubelet_tls or kubelet_client.ssl_context()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        try:
            upstream = await session.get(url, params=query, ssl=tls, allow_redirects=False)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _dial_error(shown_url, host_port, exc) from exc
        async with upstream:
            if not 200 <= upstream.status <= 206:
                body = (await upstream.content.read(MAX_ERROR_BODY)).decode("utf-8", "replace")
                raise kubelet_error(upstream.status, body, ri.name)
            response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            stopping = ctx.extra.get("stopping")
            await _pump(
                upstream.content,
                response,
                gone=lambda: request.transport is None or request.transport.is_closing(),
                stopping=stopping if isinstance(stopping, asyncio.Event) else None,
            )
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response


async def _pump(
    source: aiohttp.StreamReader,
    response: web.StreamResponse,
    *,
    gone: Callable[[], bool],
    stopping: asyncio.Event | None,
) -> None:
    """Copy the kubelet's body to the client as it arrives, until the kubelet ends it, the
    client goes away or the server stops."""
    while True:
        try:
            chunk = await asyncio.wait_for(source.readany(), timeout=IDLE_CHECK_INTERVAL)
        except TimeoutError:
            if gone() or (stopping is not None and stopping.is_set()):
                return
            continue
        except (aiohttp.ClientError, OSError):
            return  # the kubelet dropped the stream: end ours
        if not chunk:
            return
        try:
            await response.write(chunk)
        except ConnectionError:
            return
