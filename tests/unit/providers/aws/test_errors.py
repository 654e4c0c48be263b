"""botocore errors -> providers.errors, in one place."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)
from hypothesis import given
from hypothesis import strategies as st

from providers.aws.errors import classify, translate
from providers.errors import (
    RETRYABLE,
    AuthFailure,
    CloudError,
    Conflict,
    InvalidConfiguration,
    NotFound,
    QuotaExceeded,
    RouteLimitExceeded,
    Throttled,
    Transient,
)


def client_error(
    code: str, status: int = 400, message: str = "boom", headers: dict[str, str] | None = None
) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
    }
    return ClientError(response, "DescribeInstances")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("Throttling", 400, Throttled),
        ("RequestLimitExceeded", 503, Throttled),
        ("ThrottlingException", 400, Throttled),
        ("ServiceUnavailable", 503, Transient),
        ("InternalError", 500, Transient),
        ("SomethingNew", 502, Transient),
        ("InvalidInstanceID.NotFound", 400, NotFound),
        ("InvalidRouteTableID.NotFound", 400, NotFound),
        ("LoadBalancerNotFound", 400, NotFound),
        ("TargetGroupNotFound", 400, NotFound),
        ("InvalidPermission.NotFound", 400, NotFound),
        ("DependencyViolation", 400, Conflict),
        ("ResourceInUse", 400, Conflict),
        ("DuplicateLoadBalancerName", 400, Conflict),
        ("RouteLimitExceeded", 400, RouteLimitExceeded),
        ("InstanceLimitExceeded", 400, QuotaExceeded),
        ("RulesPerSecurityGroupLimitExceeded", 400, QuotaExceeded),
        ("TooManyTargetGroups", 400, QuotaExceeded),
        ("InvalidParameterValue", 400, InvalidConfiguration),
        ("InvalidParameterCombination", 400, InvalidConfiguration),
        ("ValidationError", 400, InvalidConfiguration),
        ("InvalidPermission.Duplicate", 400, InvalidConfiguration),
        ("AuthFailure", 401, AuthFailure),
        ("UnauthorizedOperation", 403, AuthFailure),
        ("", 429, Throttled),
        ("", 403, AuthFailure),
    ],
)
def test_codes(code: str, status: int, expected: type[CloudError]) -> None:
    err = translate(client_error(code, status))
    assert type(err) is expected
    assert err.code == code
    assert "DescribeInstances" in err.message


def test_route_limit_is_a_quota_and_not_retried() -> None:
    err = translate(client_error("RouteLimitExceeded"))
    assert isinstance(err, QuotaExceeded)
    assert not isinstance(err, RETRYABLE)


def test_retry_after_is_kept() -> None:
    err = translate(client_error("Throttling", 400, headers={"retry-after": "3"}))
    assert isinstance(err, Throttled)
    assert err.retry_after == 3.0


def test_connection_errors_are_transient() -> None:
    for exc in (
        EndpointConnectionError(endpoint_url="http://127.0.0.1:5000"),
        ConnectTimeoutError(endpoint_url="http://x"),
        ReadTimeoutError(endpoint_url="http://x"),
    ):
        assert isinstance(translate(exc), Transient)


def test_credentials_and_region() -> None:
    assert isinstance(translate(NoCredentialsError()), AuthFailure)
    assert isinstance(translate(NoRegionError()), InvalidConfiguration)


def test_unknown_exceptions_become_plain_cloud_errors() -> None:
    err = translate(RuntimeError("odd"))
    assert type(err) is CloudError
    assert not isinstance(err, RETRYABLE)


@given(
    st.text(alphabet=st.characters(categories=["L", "N"], include_characters="._"), max_size=40),
    st.integers(200, 599),
)
def test_every_error_translates_to_exactly_one_class(code: str, status: int) -> None:
    err = translate(client_error(code, status))
    assert isinstance(err, CloudError)
    assert err.code == code
    if code.endswith(".NotFound") and code not in {"InvalidInstanceID.NotFound.Eventual"}:
        assert isinstance(err, NotFound)
    assert classify(code, status) is type(err)


def test_an_unparseable_reply_is_transient() -> None:
    # An overloaded endpoint's or a proxy's HTML 5xx page instead of the API's XML: retried with
    # backoff like any transient fault (it used to wait the longest delay as an unknown error).
    from botocore.parsers import ResponseParserError

    err = translate(ResponseParserError("Unable to parse response (syntax error), invalid XML received"))
    assert isinstance(err, Transient)
    assert err.code == "ResponseParserError"
