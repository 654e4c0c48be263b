"""botocore's exceptions, translated once into `providers.errors` (the `translate` given to SdkCaller).

Upstream cloud-provider-aws matches error codes ad hoc at each call site; here every code is
classified in one place so the controllers can decide from the class alone whether to retry
(Throttled, Transient, Conflict), report (InvalidConfiguration, QuotaExceeded, AuthFailure) or
treat a delete as done (NotFound).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserError

from providers.errors import (
    AuthFailure,
    CloudError,
    Conflict,
    InvalidConfiguration,
    NotFound,
    NotSupported,
    QuotaExceeded,
    RouteLimitExceeded,
    Throttled,
    Transient,
)

__all__ = ["classify", "error_code", "translate"]

_THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
        "BandwidthLimitExceeded",
    }
)
_TRANSIENT = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "InternalError",
        "InternalFailure",
        "InternalServiceError",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestExpired",
        "IDPCommunicationError",
        "InsufficientInstanceCapacity",
        # EC2 is eventually consistent: an id just returned by a create may not be visible yet.
        "InvalidInstanceID.NotFound.Eventual",
    }
)
_NOT_FOUND = frozenset(
    {
        "LoadBalancerNotFound",
        "AccessPointNotFound",
        "TargetGroupNotFound",
        "ListenerNotFound",
        "RuleNotFound",
        "TargetNotFound",
        "InvalidTarget",
        "PolicyNotFound",
        "ResourceNotFoundException",
        "NoSuchEntity",
    }
)
_CONFLICT = frozenset(
    {
        "DependencyViolation",
        "ResourceInUse",
        "ResourceInUseException",
        "InvalidGroup.InUse",
        "IncorrectState",
        "IncorrectInstanceState",
        "OperationNotPermittedException",
        "ConcurrentModificationException",
        "OperationAborted",
        # The name of a load balancer being deleted (a scheme change recreates it) is briefly taken.
        "DuplicateLoadBalancerName",
    }
)
_AUTH = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "OptInRequired",
        "UnrecognizedClientException",
        "Blocked",
    }
)
_INVALID = frozenset(
    {
        "ValidationError",
        "ValidationException",
        "MissingParameter",
        "MissingAction",
        "InvalidConfigurationRequest",
        "IdempotentParameterMismatch",
        "UnknownParameter",
        "MalformedPolicyDocument",
    }
)
_NOT_SUPPORTED = frozenset({"Unsupported", "UnsupportedOperation", "UnsupportedProtocol", "InvalidAction"})


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ("" for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _retry_after(response: Any) -> float | None:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def classify(code: str, status: int) -> type[CloudError]:
    """The error class for an AWS error code and HTTP status; the code wins over the status."""
    if code in _THROTTLED:
        return Throttled
    if code == "RouteLimitExceeded":
        return RouteLimitExceeded
    if code in _TRANSIENT:
        return Transient
    if code in _NOT_FOUND or code.endswith((".NotFound", "NotFound")):
        return NotFound
    if code in _CONFLICT:
        return Conflict
    if code in _AUTH:
        return AuthFailure
    if code.endswith(("LimitExceeded", "LimitExceededException")) or code.startswith("TooMany"):
        return QuotaExceeded
    if code in _NOT_SUPPORTED:
        return NotSupported
    if (
        code in _INVALID
        or code.startswith("Invalid")
        or code.endswith((".Malformed", ".Duplicate"))
        or code.startswith("Duplicate")
    ):
        return InvalidConfiguration
    if status == 429:
        return Throttled
    if status >= 500:
        return Transient
    if status in {401, 403}:
        return AuthFailure
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status == 400 and code:
        return InvalidConfiguration
    return CloudError


def translate(exc: Exception) -> CloudError:
    """Map any exception raised by a boto3 call to our error tree (never raises)."""
    if isinstance(exc, CloudError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or str(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        cls = classify(code, status)
        op = getattr(exc, "operation_name", "")
        text = f"{op}: {message}" if op else message
        if cls is Throttled:
            return Throttled(text, code=code, retry_after=_retry_after(exc.response))
        return cls(text, code=code)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AuthFailure(f"no usable AWS credentials: {exc}", code=type(exc).__name__)
    if isinstance(exc, NoRegionError):
        return InvalidConfiguration(
            "no AWS region: set region in the cloud config or AWS_REGION", code="NoRegion"
        )
    if isinstance(exc, ParamValidationError):
        return InvalidConfiguration(str(exc), code="ParamValidation")
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError...
        return Transient(str(exc), code=type(exc).__name__)
    if isinstance(exc, TimeoutError | ConnectionError):
        return Transient(str(exc), code=type(exc).__name__)
    if isinstance(exc, ResponseParserError):
        # A reply that is not the API's XML or JSON: an overloaded endpoint's or a proxy's HTML
        # 5xx page. Retry it like a transient fault, not wait the longest delay.
        return Transient(f"unparseable AWS response: {exc}", code=type(exc).__name__)
    return CloudError(f"unexpected AWS SDK error: {exc!r}", code=type(exc).__name__)
