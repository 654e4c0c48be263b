"""Reading the causes of a failed API request (upstream apierrors.HasStatusCause), chiefly the
one every controller checks: a create refused because its namespace is being deleted, which
every later create there would hit too, so it is neither reported nor retried."""

from __future__ import annotations

from controlplane.api import errors

__all__ = ["NAMESPACE_TERMINATING_CAUSE", "has_status_cause", "namespace_terminating"]

# v1.NamespaceTerminatingCause
NAMESPACE_TERMINATING_CAUSE = "NamespaceTerminating"


def has_status_cause(exc: BaseException, cause: str) -> bool:
    return isinstance(exc, errors.StatusError) and any(c.reason == cause for c in exc.causes)


def namespace_terminating(exc: BaseException) -> bool:
    return has_status_cause(exc, NAMESPACE_TERMINATING_CAUSE)
