"""Calling a webhook: its clientConfig resolved to an address this server can reach, TLS checked
against the caBundle, one POST bounded by the webhook's timeout (util/webhook in upstream).

A `service` reference is resolved through the Service's Endpoints (the first ready address and
the target port of the referenced service port): upstream dials the ClusterIP through
kube-proxy, which this control plane does not run. The TLS server name stays
`<service>.<namespace>.svc`, so a certificate made for upstream works unchanged."""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = ["Target", "WebhookCallFailed", "post_json", "resolve"]

Obj = dict[str, Any]


class WebhookCallFailed(Exception):
    """The POST did not produce a usable answer; the text follows Go's net/http wording, as
    upstream's `failed to call webhook: <err>` shows it."""


@dataclass(frozen=True)
class Target:
    """Where to connect, and the URL and TLS name the request is made for."""

    url: str  # as upstream shows it in errors (service DNS name, with ?timeout=)
    connect_url: str  # what is dialled
    server_hostname: str | None
    ssl_context: ssl.SSLContext


def _ssl_context(ca_bundle: Any) -> ssl.SSLContext:
    if not ca_bundle:
        return ssl.create_default_context()
    try:
        pem = base64.b64decode(str(ca_bundle), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise WebhookCallFailed(f"invalid caBundle: {exc}") from exc
    try:
        return ssl.create_default_context(cadata=pem)
    except ssl.SSLError as exc:
        raise WebhookCallFailed(
            "unable to load root certificates: unable to parse bytes as PEM block"
        ) from exc


def _with_timeout(url: str, timeout_seconds: int) -> str:
    # The rest client puts the webhook's timeout on the query, as the webhook may honour it.
    parts = urlsplit(url)
    query = f"{parts.query}&timeout={timeout_seconds}s" if parts.query else f"timeout={timeout_seconds}s"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


async def resolve(ctx: ServerContext, client_config: Mapping[str, Any], timeout_seconds: int) -> Target:
    context = _ssl_context(client_config.get("caBundle"))
    url = client_config.get("url")
    if url:
        shown = _with_timeout(str(url), timeout_seconds)
        return Target(shown, shown, None, context)
    service = client_config.get("service")
    if not isinstance(service, Mapping):
        raise WebhookCallFailed("webhook clientConfig has neither url nor service")
    namespace = str(service.get("namespace", ""))
    name = str(service.get("name", ""))
    port = int(service.get("port") or 443)
    path = str(service.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    host = f"{name}.{namespace}.svc"
    shown = _with_timeout(f"https://{host}:{port}{path}", timeout_seconds)
    address, target_port = await _endpoint(ctx, namespace, name, port)
    dial_host = f"[{address}]" if ":" in address else address
    connect = _with_timeout(f"https://{dial_host}:{target_port}{path}", timeout_seconds)
    return Target(shown, connect, host, context)


async def _endpoint(ctx: ServerContext, namespace: str, name: str, port: int) -> tuple[str, int]:
    svc_info = ctx.registry.get("", "v1", "services")
    ep_info = ctx.registry.get("", "v1", "endpoints")
    assert svc_info is not None and ep_info is not None
    svc = await ctx.store.get_or_none(svc_info, namespace, name)
    if svc is None:
        raise WebhookCallFailed(f'service "{name}" not found')
    ports = (svc.get("spec") or {}).get("ports") or []
    svc_port = next((p for p in ports if int(p.get("port", 0)) == port), None)
    if svc_port is None:
        raise WebhookCallFailed(f'service "{name}" does not have a port {port}')
    port_name = str(svc_port.get("name") or "")
    target = svc_port.get("targetPort", port)
    endpoints = await ctx.store.get_or_none(ep_info, namespace, name)
    for subset in (endpoints or {}).get("subsets") or []:
        addresses = subset.get("addresses") or []
        if not addresses:
            continue
        ep_ports = subset.get("ports") or []
        ep_port = next((p for p in ep_ports if str(p.get("name") or "") == port_name), None)
        if ep_port is None and len(ep_ports) == 1 and not port_name:
            ep_port = ep_ports[0]
        if ep_port is not None:
            return str(addresses[0]["ip"]), int(ep_port["port"])
        if isinstance(target, int) and not ep_ports:
            return str(addresses[0]["ip"]), target
    raise WebhookCallFailed(f'no endpoints available for service "{name}"')


def _go_dial_error(exc: BaseException, target: Target) -> str:
    """net/http's words for the failures people search for."""
    parts = urlsplit(target.connect_url)
    dial = f"dial tcp {parts.hostname}:{parts.port}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"tls: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return f"{dial}: connect: connection refused"
        return f"{dial}: {exc.os_error}"
    return str(exc) or type(exc).__name__


async def post_json(target: Target, body: Obj, timeout_seconds: int) -> Obj:
    """POST `body`; returns the decoded JSON answer of a 2xx response."""
    payload = orjson.dumps(body)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if target.server_hostname is not None:
        headers["Host"] = urlsplit(target.url).netloc
    try:
        async with asyncio.timeout(timeout_seconds):
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    target.connect_url,
                    data=payload,
                    headers=headers,
                    ssl=target.ssl_context,
                    server_hostname=target.server_hostname,
                ) as resp,
            ):
                raw = await resp.read()
                status = resp.status
    except TimeoutError as exc:
        raise WebhookCallFailed(f'Post "{target.url}": context deadline exceeded') from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise WebhookCallFailed(f'Post "{target.url}": {_go_dial_error(exc, target)}') from exc
    if status < 200 or status > 299:
        raise WebhookCallFailed(_unexpected_status(status, raw))
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WebhookCallFailed(f"couldn't get version/kind; json parse error: {exc}") from exc
    if not isinstance(decoded, dict):
        raise WebhookCallFailed("couldn't get version/kind; json parse error: not an object")
    return decoded


def _unexpected_status(status: int, raw: bytes) -> str:
    """client-go's rest result for a non-2xx answer: a Status body is its own message."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("message"):
        return str(body["message"])
    text = raw.decode(errors="replace").strip()
    if text:
        return f'an error on the server ("{text[:200]}") has prevented the request from succeeding'
    return f"the server responded with the status code {status} but did not return more information"
