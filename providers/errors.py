"""The one error tree every provider translates its SDK's errors into, once, at its boundary.

Controllers in `ccm/` decide what to do from the class alone: retry later (`Throttled`,
`Transient`, `Conflict`), report to the user and stop (`InvalidConfiguration`, `QuotaExceeded`,
`NotSupported`), or treat as done (`NotFound` on a delete). No botocore or libcloud exception
ever crosses `providers/`.
"""

from __future__ import annotations

__all__ = [
    "RETRYABLE",
    "AuthFailure",
    "CloudError",
    "Conflict",
    "InvalidConfiguration",
    "NotFound",
    "NotSupported",
    "QuotaExceeded",
    "RouteLimitExceeded",
    "Throttled",
    "Transient",
]


class CloudError(Exception):
    """A cloud call failed. `code` keeps the provider's own error code (e.g. `InvalidSubnetID.NotFound`)."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


class NotFound(CloudError):
    """The resource does not exist (deletes treat this as success)."""


class Throttled(CloudError):
    """The cloud asked us to slow down; `retry_after` seconds when it said how long."""

    def __init__(self, message: str, *, code: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Transient(CloudError):
    """A fault worth retrying: 5xx, timeouts, dropped connections."""


class Conflict(CloudError):
    """The resource is busy or still in use by another (e.g. a security group still attached); retry later."""


class QuotaExceeded(CloudError):
    """An account or service limit was hit; retrying will not help until the limit changes."""


class RouteLimitExceeded(QuotaExceeded):
    """A route table is full (AWS: 50 routes by default)."""


class NotSupported(CloudError):
    """The cloud or this provider cannot do what was asked (a missing capability, an unsupported shape)."""


class InvalidConfiguration(CloudError):
    """What the user asked for is wrong: a bad annotation value, an unknown subnet, a malformed CIDR."""


class AuthFailure(CloudError):
    """The credentials were refused or lack a permission."""


RETRYABLE: tuple[type[CloudError], ...] = (Throttled, Transient, Conflict)
