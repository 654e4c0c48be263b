"""The Kubernetes `Status` error tree.

Every failure that reaches a client is one of these, rendered by `to_status()` with the field
order Go's encoder uses (kind, apiVersion, metadata, status, message, reason, details, code), so
clients that compare bodies byte for byte see what upstream sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "AlreadyExists",
    "BadRequest",
    "Cause",
    "Conflict",
    "Expired",
    "Forbidden",
    "Gone",
    "InternalError",
    "Invalid",
    "MethodNotSupported",
    "NotAcceptable",
    "NotFound",
    "RequestEntityTooLarge",
    "ServiceUnavailable",
    "StatusError",
    "Timeout",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "qualified_resource",
]

# Cause types, as in k8s.io/apimachinery/pkg/apis/meta/v1 CauseType and field.ErrorType.
FIELD_VALUE_INVALID = "FieldValueInvalid"
FIELD_VALUE_REQUIRED = "FieldValueRequired"
FIELD_VALUE_NOT_SUPPORTED = "FieldValueNotSupported"
FIELD_VALUE_DUPLICATE = "FieldValueDuplicate"
FIELD_VALUE_FORBIDDEN = "FieldValueForbidden"
FIELD_VALUE_TOO_LONG = "FieldValueTooLong"
FIELD_VALUE_TYPE_INVALID = "FieldValueTypeInvalid"
FIELD_MANAGER_CONFLICT = "FieldManagerConflict"
UNEXPECTED_SERVER_RESPONSE = "UnexpectedServerResponse"


@dataclass(frozen=True)
class Cause:
    reason: str
    message: str
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


def qualified_resource(resource: str, group: str) -> str:
    """`configmaps` for core, `deployments.apps` otherwise: how upstream names a resource in messages."""
    return f"{resource}.{group}" if group else resource


@dataclass
class StatusError(Exception):
    """An error with a Kubernetes Status representation."""

    message: str
    name: str = ""
    group: str = ""
    kind: str = ""  # upstream puts the plural resource here, e.g. "configmaps"
    causes: list[Cause] = field(default_factory=list)
    retry_after: int | None = None
    uid: str = ""

    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def details(self) -> dict[str, Any] | None:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.uid:
            details["uid"] = self.uid
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        return details or None

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            status["reason"] = self.reason
        details = self.details()
        if details is not None:
            status["details"] = details
        status["code"] = self.code
        return status

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> StatusError:
        """Rebuild the matching subclass from a Status body (used by clients)."""
        reason = status.get("reason", "")
        code = int(status.get("code", 500))
        target: type[StatusError] = StatusError
        for sub in _all_subclasses(StatusError):
            if sub.reason == reason and sub.code == code:
                target = sub
                break
        else:
            for sub in _all_subclasses(StatusError):
                if sub.code == code:
                    target = sub
                    break
        details = status.get("details") or {}
        causes = [
            Cause(reason=c.get("reason", ""), message=c.get("message", ""), field=c.get("field", ""))
            for c in details.get("causes") or []
        ]
        return target(
            message=status.get("message", ""),
            name=details.get("name", ""),
            group=details.get("group", ""),
            kind=details.get("kind", ""),
            causes=causes,
            retry_after=details.get("retryAfterSeconds"),
        )


def _all_subclasses(cls: type[StatusError]) -> list[type[StatusError]]:
    out: list[type[StatusError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


class BadRequest(StatusError):
    code = 400
    reason = "BadRequest"


class Unauthorized(StatusError):
    code = 401
    reason = "Unauthorized"


class Forbidden(StatusError):
    code = 403
    reason = "Forbidden"


class NotFound(StatusError):
    code = 404
    reason = "NotFound"

    @classmethod
    def for_object(cls, resource: str, group: str, name: str) -> NotFound:
        return cls(
            message=f'{qualified_resource(resource, group)} "{name}" not found',
            name=name,
            group=group,
            kind=resource,
        )


class MethodNotSupported(StatusError):
    code = 405
    reason = "MethodNotAllowed"


class NotAcceptable(StatusError):
    code = 406
    reason = "NotAcceptable"


class AlreadyExists(StatusError):
    code = 409
    reason = "AlreadyExists"

    @classmethod
    def for_object(cls, resource: str, group: str, name: str) -> AlreadyExists:
        return cls(
            message=f'{qualified_resource(resource, group)} "{name}" already exists',
            name=name,
            group=group,
            kind=resource,
        )


class Conflict(StatusError):
    code = 409
    reason = "Conflict"

    @classmethod
    def modified(cls, resource: str, group: str, name: str) -> Conflict:
        return cls(
            message=(
                f'Operation cannot be fulfilled on {qualified_resource(resource, group)} "{name}": '
                "the object has been modified; please apply your changes to the latest version and try again"
            ),
            name=name,
            group=group,
            kind=resource,
        )


class Gone(StatusError):
    code = 410
    reason = "Gone"


class Expired(StatusError):
    code = 410
    reason = "Expired"


class RequestEntityTooLarge(StatusError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(StatusError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(StatusError):
    code = 422
    reason = "Invalid"

    @classmethod
    def for_object(cls, kind: str, group: str, name: str, causes: list[Cause]) -> Invalid:
        """Upstream's message: `Kind.group "name" is invalid: [path: reason, ...]`."""
        qualified = f"{kind}.{group}" if group else kind
        parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
        joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        return cls(
            message=f'{qualified} "{name}" is invalid: {joined}',
            name=name,
            group=group,
            kind=kind,
            causes=causes,
        )


class TooManyRequests(StatusError):
    code = 429
    reason = "TooManyRequests"


class InternalError(StatusError):
    code = 500
    reason = "InternalError"


class ServiceUnavailable(StatusError):
    code = 503
    reason = "ServiceUnavailable"


class Timeout(StatusError):
    code = 504
    reason = "Timeout"
