"""Webhook errors worded as upstream's webhook/errors and util/webhook packages."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from controlplane.api import errors

__all__ = [
    "CallError",
    "denied",
    "dry_run_unsupported",
    "internal",
]


class CallError(Exception):
    """upstream's ErrCallingWebhook: the webhook could not be asked, or answered nonsense. The
    failurePolicy decides whether the request goes on; the text is the whole upstream error."""

    def __init__(self, webhook: str, reason: str) -> None:
        self.webhook = webhook
        self.reason = reason
        super().__init__(f'failed calling webhook "{webhook}": {reason}')


def internal(exc: Exception) -> errors.InternalError:
    """apierrors.NewInternalError: the message is prefixed and the error is the one cause."""
    text = str(exc)
    return errors.InternalError(message=f"Internal error occurred: {text}", causes=[errors.Cause("", text)])


def dry_run_unsupported(webhook: str) -> errors.BadRequest:
    return errors.BadRequest(message=f'admission webhook "{webhook}" does not support dry run')


@functools.cache
def _status_class(code: int, reason: str) -> type[errors.StatusError]:
    # A webhook's Status carries its own code and reason, which the error tree keeps per class.
    return type(f"WebhookStatus{code}", (errors.StatusError,), {"code": code, "reason": reason})


def denied(webhook: str, result: Mapping[str, Any] | None) -> errors.StatusError:
    """webhookerrors.ToStatusErr: the webhook's own Status, its message prefixed with who denied."""
    status = dict(result or {})
    code = status.get("code")
    code = code if isinstance(code, int) and code >= 400 else 400
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or "")
    prefix = f'admission webhook "{webhook}" denied the request'
    if message:
        text = f"{prefix}: {message}"
    elif reason:
        text = f"{prefix}: {reason}"
    else:
        text = f"{prefix} without explanation"
    details = status.get("details") if isinstance(status.get("details"), Mapping) else {}
    assert isinstance(details, Mapping)
    causes = [
        errors.Cause(str(c.get("reason", "")), str(c.get("message", "")), str(c.get("field", "")))
        for c in details.get("causes") or ()
        if isinstance(c, Mapping)
    ]
    cls = _status_class(code, reason)
    return cls(
        message=text,
        name=str(details.get("name", "")),
        group=str(details.get("group", "")),
        kind=str(details.get("kind", "")),
        causes=causes,
    )
