"""The audit log: one `audit.k8s.io/v1` Event per request stage, as JSON lines.

As upstream's k8s.io/apiserver/pkg/endpoints/filters/audit.go: the policy
(`controlplane.apiserver.audit_policy`) picks a level per request from the authenticated user and
the request's attributes; events are emitted at RequestReceived, ResponseStarted (long-running
requests only: watches and streaming subresources), ResponseComplete, or Panic when the handler
failed unexpectedly. Every response carries the request's `Audit-ID` header (the client's own,
when it sent one).

Deliberate difference from upstream: Secrets, TokenReviews and TokenRequests
(`serviceaccounts/token`) are recorded at Metadata level at most, whatever the policy says, so
their bodies (secret data, bearer tokens) never reach the log; failure messages of such requests
are left out when they might echo the submitted values (422 Invalid).

Writing never blocks the event loop: events are serialised on the loop and queued (bounded) for a
writer thread; when the queue is full the event is dropped and counted in
`apiserver_audit_error_total{plugin="buffered"}` (upstream's non-blocking batch mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

from aiohttp import web
from aiohttp.streams import StreamReader

from controlplane.api import errors, uids
from controlplane.apiserver import codec, metrics, tls
from controlplane.apiserver.audit_policy import (
    LEVEL_METADATA,
    LEVEL_NONE,
    LEVEL_REQUEST,
    LEVEL_REQUEST_RESPONSE,
    Policy,
    RequestAuditConfig,
    level_at_least,
)
from controlplane.apiserver.authn import AUDIT_ANNOTATIONS, UserInfo
from controlplane.apiserver.authz import Attributes, Decision
from controlplane.apiserver.requestinfo import RequestInfo

__all__ = [
    "AUDIT_ID_HEADER",
    "Auditor",
    "Backend",
    "ListBackend",
    "LogBackend",
    "annotate",
    "build_attributes",
    "failed_authentication",
    "is_sensitive",
    "micro_time",
    "middleware",
    "on_response_prepare",
    "record_decision",
]

log = logging.getLogger("pinnace.apiserver.audit")

AUDIT_ID_HEADER = "Audit-ID"
DECISION_ANNOTATION = "authorization.k8s.io/decision"
REASON_ANNOTATION = "authorization.k8s.io/reason"
LONG_RUNNING_SUBRESOURCES = frozenset({"log", "exec", "attach", "portforward", "proxy"})
MUTATING_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def micro_time(moment: datetime) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_sensitive(ri: RequestInfo) -> bool:
    """Requests whose bodies carry secret values or bearer tokens: never logged beyond Metadata."""
    if not ri.is_resource_request:
        return False
    if ri.resource == "secrets":
        return True
    if ri.resource == "tokenreviews":
        return True
    return ri.resource == "serviceaccounts" and ri.subresource == "token"


class Backend(Protocol):
    def process(self, event: dict[str, Any]) -> None: ...


class ListBackend:
    """Keeps serialised events in memory (tests); serialises like the log so nothing aliases."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def process(self, event: dict[str, Any]) -> None:
        self.events.append(json.loads(json.dumps(event)))


class LogBackend:
    """JSON lines to a file (or stdout for `-`), rotated by size as upstream's lumberjack writer:
    the full file becomes `<name>-<UTC time>.<ext>`, at most `max_backups` of those are kept (0:
    all) and none older than `max_age_days` (0: any age)."""

    def __init__(
        self,
        path: str,
        *,
        max_size_mb: int = 0,
        max_backups: int = 0,
        max_age_days: int = 0,
        buffer_size: int = 10000,
        batch_size: int = 400,
    ) -> None:
        self.path = path
        # lumberjack treats 0 as its 100 MB default.
        self.max_size = (max_size_mb or 100) * 1024 * 1024
        self.max_backups = max_backups
        self.max_age = timedelta(days=max_age_days) if max_age_days > 0 else None
        self.batch_size = batch_size
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=buffer_size)
        self._thread = threading.Thread(target=self._run, name="audit-log-writer", daemon=True)
        self._file: IO[bytes] | None = None
        self._size = 0

    def start(self) -> None:
        self._open()
        self._thread.start()

    def process(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            metrics.audit_error("buffered")
            return
        metrics.AUDIT_EVENTS.inc()

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop the writer; blocking, so call it off the event loop."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _open(self) -> None:
        if self.path == "-":
            self._file = sys.stdout.buffer
            self._size = 0
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "ab")
        self._size = os.fstat(fd).st_size

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines = [line for line in batch if line is not None]
            stop = len(lines) != len(batch)
            try:
                self._write(lines)
            except OSError:
                log.exception("writing the audit log failed")
                for _ in lines:
                    metrics.audit_error("log")
        if self._file is not None and self.path != "-":
            self._file.close()

    def _write(self, lines: list[bytes]) -> None:
        assert self._file is not None
        for line in lines:
            if self.path != "-" and self._size > 0 and self._size + len(line) > self.max_size:
                self._rotate()
            self._file.write(line)
            self._size += len(line)
        self._file.flush()

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        current = Path(self.path)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S.%f")[:-3]
        current.rename(current.with_name(f"{current.stem}-{stamp}{current.suffix}"))
        self._open()
        self._prune(current)

    def _prune(self, current: Path) -> None:
        backups = sorted(current.parent.glob(f"{current.stem}-*{current.suffix}"), reverse=True)
        keep = backups[: self.max_backups] if self.max_backups > 0 else backups
        cutoff = time.time() - self.max_age.total_seconds() if self.max_age is not None else None
        for backup in backups:
            if backup not in keep or (cutoff is not None and backup.stat().st_mtime < cutoff):
                with contextlib.suppress(OSError):
                    backup.unlink()


@dataclass
class Auditor:
    policy: Policy
    backend: Backend
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def emit(self, event: dict[str, Any], stage: str, omit: frozenset[str]) -> None:
        if stage in omit:
            return
        event["stage"] = stage
        event["stageTimestamp"] = micro_time(self.clock())
        metrics.audit_level(event["level"])
        self.backend.process(event)


@dataclass
class _RequestAudit:
    auditor: Auditor
    config: RequestAuditConfig
    event: dict[str, Any]
    user: UserInfo | None
    long_running: bool
    sensitive: bool
    user_key: web.RequestKey[UserInfo]
    annotations: dict[str, str] = field(default_factory=dict)
    started: bool = False


_AUDIT_ID = web.RequestKey("audit_id", str)
_STATE = web.RequestKey("audit_state", _RequestAudit)


def build_attributes(user: UserInfo, ri: RequestInfo, path: str) -> Attributes:
    return Attributes(
        user=user,
        verb=ri.verb,
        api_group=ri.group,
        resource=ri.resource,
        subresource=ri.subresource,
        namespace=ri.namespace,
        name=ri.name,
        path=path,
        resource_request=ri.is_resource_request,
        api_version=ri.version,
    )


def _user(user: UserInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"username": user.name}
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


def _source_ips(request: web.Request) -> list[str]:
    """As upstream's utilnet.SourceIPs: X-Forwarded-For, X-Real-Ip, then the peer."""
    ips: list[str] = []
    forwarded = request.headers.get("X-Forwarded-For", "")
    ips.extend(ip.strip() for ip in forwarded.split(",") if ip.strip())
    real = request.headers.get("X-Real-Ip", "").strip()
    if real and real not in ips:
        ips.append(real)
    remote = request.remote
    if remote and remote not in ips:
        ips.append(remote)
    return ips


def _object_ref(ri: RequestInfo) -> dict[str, str] | None:
    if not ri.is_resource_request:
        return None
    ref = {
        "resource": ri.resource,
        "namespace": ri.namespace,
        "name": ri.name,
        "apiGroup": ri.group,
        "apiVersion": ri.version,
        "subresource": ri.subresource,
    }
    return {k: v for k, v in ref.items() if v}


def _strip_managed_fields(obj: Any) -> None:
    if not isinstance(obj, dict):
        return
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    items = obj.get("items")
    if isinstance(items, list):
        for item in items:
            _strip_managed_fields(item)


def _response_status(code: int, body: Any, *, sensitive: bool) -> dict[str, Any]:
    """Upstream copies the bounded fields of a returned Status; a plain success is just its code."""
    status: dict[str, Any] = {"metadata": {}, "code": code}
    if isinstance(body, dict) and body.get("kind") == "Status":
        for key in ("status", "message", "reason", "details"):
            if key in body:
                status[key] = body[key]
        if sensitive and code == 422:
            status.pop("message", None)
            status.pop("details", None)
    return status


def _json_body(response: web.StreamResponse) -> Any:
    if not isinstance(response, web.Response):
        return None
    body = response.body
    if not isinstance(body, bytes | bytearray) or "json" not in (response.content_type or ""):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def annotate(request: web.Request, key: str, value: str) -> None:
    """Add an annotation to the request's audit event (as upstream's audit.AddAuditAnnotation)."""
    state = request.get(_STATE)
    if state is not None:
        state.annotations.setdefault(key, value)


def record_decision(request: web.Request, decision: Decision) -> None:
    annotate(request, DECISION_ANNOTATION, "allow" if decision.allowed else "forbid")
    annotate(request, REASON_ANNOTATION, decision.reason)


async def _capture_request_body(request: web.Request) -> Any:
    """Read the body for the event and hand the handler a fresh stream with the same bytes."""
    if not request.body_exists:
        return None
    raw = await codec.read_body(request)
    reader = StreamReader(request.protocol, max(len(raw), 1) * 2 + 65536, loop=asyncio.get_running_loop())
    if raw:
        reader.feed_data(raw)
    reader.feed_eof()
    # aiohttp offers no public way to replace a consumed body; handlers read `request.content`.
    request._payload = reader
    request._cache["content"] = reader  # `content` is a cached property over `_payload`
    try:
        return codec.decode_body(raw, codec.media_type(request.content_type) or codec.JSON)
    except errors.StatusError:
        return None


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Every response carries the Audit-ID; long-running ones log ResponseStarted as they start."""
    audit_id = request.get(_AUDIT_ID)
    if audit_id is not None and AUDIT_ID_HEADER not in response.headers:
        response.headers[AUDIT_ID_HEADER] = audit_id
    state = request.get(_STATE)
    if state is not None and state.long_running and not state.started:
        state.started = True
        event = _complete(state, request, response.status, None)
        state.auditor.emit(event, "ResponseStarted", state.config.omit_stages)


def _complete(state: _RequestAudit, request: web.Request, code: int, body: Any) -> dict[str, Any]:
    event = dict(state.event)
    if state.annotations:
        event["annotations"] = dict(state.annotations)
    current = request.get(state.user_key)
    if current is not None and state.user is not None and current is not state.user:
        event["impersonatedUser"] = _user(current)
    event["responseStatus"] = _response_status(code, body, sensitive=state.sensitive)
    return event


def _auth_methods(request: web.Request) -> str:
    """Upstream's getAuthMethods: which credentials were tried, never their values."""
    methods: list[str] = []
    scheme, _, rest = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "basic":
        methods.append("basic")
    if rest and scheme.lower() == "bearer":
        methods.append("bearer")
    if request.query.get("access_token", "").strip():
        methods.append("access_token")
    # Presented, verified or not (upstream looks at req.TLS.PeerCertificates).
    transport = request.transport
    if tls.client_certificate(transport) is not None or (
        transport is not None and transport.get_extra_info("peercert")
    ):
        methods.append("x509")
    if methods:
        return f"Authentication failed, attempted: {', '.join(methods)}"
    return "Authentication failed, no credentials provided"


def failed_authentication(
    auditor: Auditor | None,
    *,
    user_key: web.RequestKey[UserInfo],
    info_key: web.RequestKey[RequestInfo],
) -> Any:
    """Before authentication, as upstream's WithFailedAuthenticationAudit: a request refused with
    401 is recorded once, at ResponseStarted, as evaluated for a request without a user."""

    @web.middleware
    async def failed(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Upstream's WithAuditInit: every response carries an Audit-ID, refused ones too.
        request[_AUDIT_ID] = request.headers.get(AUDIT_ID_HEADER) or uids.uuid4()
        if auditor is None:
            return await handler(request)
        try:
            return await handler(request)
        except errors.Unauthorized as exc:
            if request.get(user_key) is None:
                _record_failed(auditor, request, request[info_key], exc)
            raise

    return failed


def _record_failed(auditor: Auditor, request: web.Request, ri: RequestInfo, exc: errors.StatusError) -> None:
    nobody = UserInfo(name="")
    config = auditor.policy.evaluate(build_attributes(nobody, ri, request.path))
    if config.level == LEVEL_NONE:
        return
    now = micro_time(auditor.clock())
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": LEVEL_METADATA if is_sensitive(ri) else config.level,
        "auditID": request[_AUDIT_ID],
        "stage": "",
        "requestURI": request.path_qs,
        "verb": ri.verb,
        "user": {},
        "sourceIPs": _source_ips(request),
    }
    agent = request.headers.get("User-Agent")
    if agent:
        event["userAgent"] = agent
    ref = _object_ref(ri)
    if ref is not None:
        event["objectRef"] = ref
    event["responseStatus"] = {"metadata": {}, "message": _auth_methods(request), "code": exc.code}
    event["requestReceivedTimestamp"] = now
    auditor.emit(event, "ResponseStarted", config.omit_stages)


def middleware(
    auditor: Auditor | None,
    *,
    user_key: web.RequestKey[UserInfo],
    info_key: web.RequestKey[RequestInfo],
) -> Any:
    """Runs after authentication (the policy matches on the user) and before impersonation and
    authorization, as upstream's WithAudit."""

    @web.middleware
    async def audit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _AUDIT_ID not in request:
            request[_AUDIT_ID] = request.headers.get(AUDIT_ID_HEADER) or uids.uuid4()
        if auditor is None:
            return await handler(request)
        user = request.get(user_key)
        ri = request[info_key]
        if user is None:
            return await handler(request)
        config = auditor.policy.evaluate(build_attributes(user, ri, request.path))
        if config.level == LEVEL_NONE:
            return await handler(request)
        sensitive = is_sensitive(ri)
        level = LEVEL_METADATA if sensitive else config.level
        received = auditor.clock()
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "auditID": request[_AUDIT_ID],
            "stage": "",
            "requestURI": request.path_qs,
            "verb": ri.verb,
            "user": _user(user),
            "sourceIPs": _source_ips(request),
        }
        agent = request.headers.get("User-Agent")
        if agent:
            event["userAgent"] = agent
        ref = _object_ref(ri)
        if ref is not None:
            event["objectRef"] = ref
        event["requestReceivedTimestamp"] = micro_time(received)
        state = _RequestAudit(
            auditor,
            config,
            event,
            user,
            long_running=ri.verb == "watch" or ri.subresource in LONG_RUNNING_SUBRESOURCES,
            sensitive=sensitive,
            user_key=user_key,
            annotations=dict(request.get(AUDIT_ANNOTATIONS) or {}),
        )
        request[_STATE] = state
        auditor.emit(dict(event), "RequestReceived", config.omit_stages)

        request_object: Any = None
        # Streaming requests (exec, attach, port-forward upgrades) have no object to record, and
        # reading their body would wait for the end of the stream.
        if (
            level_at_least(level, LEVEL_REQUEST)
            and ri.verb in MUTATING_VERBS
            and not state.long_running
            and "Upgrade" not in request.headers
        ):
            request_object = await _capture_request_body(request)
            if config.omit_managed_fields:
                _strip_managed_fields(request_object)
        try:
            response = await handler(request)
        except errors.StatusError as exc:
            status = exc.to_status()
            final = _complete(state, request, exc.code, status)
            _attach(final, level, request_object, status, config)
            auditor.emit(final, "ResponseComplete", config.omit_stages)
            raise
        except web.HTTPException as exc:
            final = _complete(state, request, exc.status, None)
            _attach(final, level, request_object, None, config)
            auditor.emit(final, "ResponseComplete", config.omit_stages)
            raise
        except BaseException as exc:
            final = _complete(state, request, 500, None)
            if isinstance(exc, Exception):
                # Upstream records the panic value; the type alone cannot leak request data.
                final["responseStatus"].update(
                    status="Failure",
                    reason="InternalError",
                    message=f"APIServer panic'd: {type(exc).__name__}",
                )
                auditor.emit(final, "Panic", config.omit_stages)
            elif state.started:
                # The client went away from a streaming response: that is how watches end.
                final["responseStatus"] = {"metadata": {}, "code": 200}
                auditor.emit(final, "ResponseComplete", config.omit_stages)
            raise
        # Parse only what the event shows: error Statuses, or every body at RequestResponse.
        # A create names its object in the body, not the path (upstream takes it from the request
        # object; the response also knows a generated name).
        names_object = ri.verb == "create" and ref is not None and "name" not in ref
        wants_body = not state.long_running and (
            response.status >= 400 or names_object or level_at_least(level, LEVEL_REQUEST_RESPONSE)
        )
        body = _json_body(response) if wants_body else None
        final = _complete(state, request, response.status, body)
        if names_object and response.status < 300 and isinstance(body, dict):
            name = (body.get("metadata") or {}).get("name")
            if isinstance(name, str) and name:
                final["objectRef"] = {**final["objectRef"], "name": name}
        _attach(final, level, request_object, body, config)
        auditor.emit(final, "ResponseComplete", config.omit_stages)
        return response

    return audit


def _attach(
    event: dict[str, Any], level: str, request_object: Any, body: Any, config: RequestAuditConfig
) -> None:
    if request_object is not None and level_at_least(level, LEVEL_REQUEST):
        event["requestObject"] = request_object
    if body is not None and level_at_least(level, LEVEL_REQUEST_RESPONSE):
        if config.omit_managed_fields:
            _strip_managed_fields(body)
        event["responseObject"] = body
