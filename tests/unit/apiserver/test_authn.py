"""Authentication over real TLS (client certificates, bearer tokens, anonymous paths) and the
authorization step (decisions and upstream's Forbidden messages)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from controlplane.api import errors
from controlplane.apiserver.authn import (
    ANONYMOUS_USER,
    AnonymousAuthenticator,
    ClientCertAuthenticator,
    TokenFileAuthenticator,
    UnionAuthenticator,
    UserInfo,
    bearer_token,
    require_user,
    user_from_peercert,
)
from controlplane.apiserver.authz import (
    Attributes,
    Decision,
    SystemMastersAuthorizer,
    UnionAuthorizer,
    authorize,
    forbidden_error,
    forbidden_message,
    standard_authorizer,
)
from controlplane.apiserver.pki import (
    PKI,
    client_ssl_context,
    ensure_pki,
    server_ssl_context,
    write_private_file,
)

TOKENS = """\
s3cr3t-token,alice,uid-alice,"devs,ops"

short,bob,uid-bob
,ghost,uid-ghost
extra,carol,uid-carol,team,ignored-column
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return ensure_pki(tmp_path_factory.mktemp("data") / "pki", hostnames=[], ips=[])


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens.csv"
    path.write_text(TOKENS)
    return path


def _user_json(user: UserInfo | None) -> Any:
    return None if user is None else {"name": user.name, "uid": user.uid, "groups": list(user.groups)}


@dataclass
class Server:
    url: str
    hits: list[str]


@pytest.fixture
async def server(pki: PKI, token_file: Path) -> AsyncIterator[Server]:
    """A tiny HTTPS server: `/cert` shows what the client-cert authenticator alone sees, every
    other path runs the full authentication step."""
    authenticator = AnonymousAuthenticator(
        UnionAuthenticator([ClientCertAuthenticator(), TokenFileAuthenticator(token_file)])
    )
    hits: list[str] = []

    async def cert_only(request: web.Request) -> web.Response:
        hits.append(request.path)
        user = await ClientCertAuthenticator().authenticate(request)
        assert request.transport is not None
        tls = request.transport.get_extra_info("ssl_object")
        return web.json_response(
            {"user": _user_json(user), "alpn": tls.selected_alpn_protocol(), "version": tls.version()}
        )

    async def whoami(request: web.Request) -> web.Response:
        hits.append(request.path)
        try:
            user = await require_user(authenticator, request)
        except errors.StatusError as exc:
            return web.json_response(exc.to_status(), status=exc.code)
        return web.json_response({"user": _user_json(user)})

    app = web.Application()
    app.router.add_get("/cert", cert_only)
    app.router.add_get("/{tail:.*}", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(pki))
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Server(url=f"https://127.0.0.1:{port}", hits=hits)
    finally:
        await runner.cleanup()


def _anonymous_ctx(pki: PKI) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=pki.ca_cert)


async def _get(url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        session.get(url, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_admin_certificate_authenticates_as_kubernetes_admin(server: Server, pki: PKI) -> None:
    ctx = client_ssl_context(pki, pki.admin_cert, pki.admin_key)
    status, body = await _get(server.url + "/cert", ctx)
    assert status == 200
    assert body["user"]["name"] == "kubernetes-admin"
    assert body["user"]["groups"] == ["system:masters", "system:authenticated"]
    assert body["alpn"] == "http/1.1"
    assert body["version"] in {"TLSv1.2", "TLSv1.3"}


async def test_no_client_certificate_is_no_identity(server: Server, pki: PKI) -> None:
    status, body = await _get(server.url + "/cert", _anonymous_ctx(pki))
    assert status == 200
    assert body["user"] is None


async def test_anonymous_request_is_401_with_upstream_body(server: Server, pki: PKI) -> None:
    status, body = await _get(server.url + "/api/v1/namespaces", _anonymous_ctx(pki))
    assert status == 401
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz", "/version"])
async def test_health_and_version_are_open_to_anonymous(server: Server, pki: PKI, path: str) -> None:
    status, body = await _get(server.url + path, _anonymous_ctx(pki))
    assert status == 200
    assert body["user"] == {"name": "system:anonymous", "uid": "", "groups": ["system:unauthenticated"]}


async def test_health_subpaths_are_not_anonymous(server: Server, pki: PKI) -> None:
    status, _ = await _get(server.url + "/livez/ping", _anonymous_ctx(pki))
    assert status == 401


async def test_bearer_token_over_tls(server: Server, pki: PKI) -> None:
    headers = {"Authorization": "Bearer s3cr3t-token"}
    status, body = await _get(server.url + "/api", _anonymous_ctx(pki), headers)
    assert status == 200
    assert body["user"] == {
        "name": "alice",
        "uid": "uid-alice",
        "groups": ["devs", "ops", "system:authenticated"],
    }


async def test_wrong_token_is_a_generic_401_even_on_public_paths(server: Server, pki: PKI) -> None:
    for path in ("/api", "/healthz"):
        status, body = await _get(server.url + path, _anonymous_ctx(pki), {"Authorization": "Bearer nope"})
        assert status == 401
        assert body["message"] == "Unauthorized"  # never "invalid bearer token"


async def test_valid_certificate_wins_over_a_stale_token(server: Server, pki: PKI) -> None:
    ctx = client_ssl_context(pki, pki.admin_cert, pki.admin_key)
    status, body = await _get(server.url + "/api", ctx, {"Authorization": "Bearer stale"})
    assert status == 200
    assert body["user"]["name"] == "kubernetes-admin"


async def test_certificate_from_another_ca_fails_the_handshake(
    server: Server, pki: PKI, tmp_path: Path
) -> None:
    foreign = ensure_pki(tmp_path / "foreign", hostnames=[], ips=[])
    ctx = client_ssl_context(pki, foreign.admin_cert, foreign.admin_key)
    # TLS 1.3 reports the server's rejection on the first read, TLS 1.2 during the handshake;
    # either way the request never reaches a handler.
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await _get(server.url + "/cert", ctx)
    assert server.hits == []


async def test_serving_certificate_is_not_accepted_as_a_client_certificate(server: Server, pki: PKI) -> None:
    ctx = client_ssl_context(pki, pki.serving_cert, pki.serving_key)
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await _get(server.url + "/cert", ctx)
    assert server.hits == []


async def test_issued_client_certificate_carries_its_groups(server: Server, pki: PKI, tmp_path: Path) -> None:
    from controlplane.apiserver.pki import issue_client_cert

    cert_pem, key_pem = issue_client_cert(pki, "system:node:n1", ["system:nodes"])
    write_private_file(tmp_path / "n1.crt", cert_pem)
    write_private_file(tmp_path / "n1.key", key_pem)
    ctx = client_ssl_context(pki, tmp_path / "n1.crt", tmp_path / "n1.key")
    status, body = await _get(server.url + "/api", ctx)
    assert status == 200
    assert body["user"] == {
        "name": "system:node:n1",
        "uid": "",
        "groups": ["system:nodes", "system:authenticated"],
    }


# --- pure pieces ---------------------------------------------------------------------------------


def _request(authorization: str | None = None, path: str = "/api") -> web.Request:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return make_mocked_request("GET", path, headers=headers)


def test_user_from_peercert() -> None:
    peercert = {
        "subject": (
            (("organizationName", "a"),),
            (("organizationName", "b"),),
            (("commonName", "jane"),),
        )
    }
    assert user_from_peercert(peercert) == UserInfo("jane", groups=("a", "b", "system:authenticated"))
    assert user_from_peercert({"subject": ((("organizationName", "a"),),)}) is None
    assert user_from_peercert(None) is None
    assert user_from_peercert({}) is None


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer  abc", None),  # a space before the token makes it empty, as upstream
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("  Bearer abc  ", "abc"),
        ("Bearer abc trailing", "abc"),
    ],
)
def test_bearer_token_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


async def test_token_file(token_file: Path) -> None:
    auth = TokenFileAuthenticator(token_file)
    assert await auth.authenticate(_request("Bearer short")) == UserInfo(
        "bob", "uid-bob", ("system:authenticated",)
    )
    carol = await auth.authenticate(_request("Bearer extra"))
    assert carol is not None and carol.groups == ("team", "system:authenticated")
    assert await auth.authenticate(_request()) is None
    assert await auth.authenticate(_request("Basic Zm9vOmJhcg==")) is None


async def test_wrong_and_unknown_tokens_fail_alike(token_file: Path) -> None:
    auth = TokenFileAuthenticator(token_file)
    messages = []
    for token in ("s3cr3t-tokeX", "completely-unknown", "s3cr3t-token-and-more", "S3CR3T-TOKEN"):
        with pytest.raises(errors.Unauthorized) as info:
            await auth.authenticate(_request(f"Bearer {token}"))
        messages.append(info.value.message)
    assert set(messages) == {"invalid bearer token"}
    # an empty token column is skipped, never matched by an empty bearer token
    with pytest.raises(errors.Unauthorized):
        auth.authenticate_token("")


def test_token_file_needs_three_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("token,user\n")
    with pytest.raises(ValueError, match="must have at least 3 columns"):
        TokenFileAuthenticator(path)


async def test_union_and_anonymous_semantics() -> None:
    @dataclass
    class Fixed:
        result: UserInfo | None = None
        error: bool = False

        async def authenticate(self, request: web.Request) -> UserInfo | None:
            if self.error:
                raise errors.Unauthorized(message="bad")
            return self.result

    jane = UserInfo("jane", groups=("system:authenticated",))
    assert await UnionAuthenticator([Fixed(error=True), Fixed(jane)]).authenticate(_request()) == jane
    assert await UnionAuthenticator([Fixed(), Fixed()]).authenticate(_request()) is None
    with pytest.raises(errors.Unauthorized):
        await UnionAuthenticator([Fixed(), Fixed(error=True)]).authenticate(_request())

    anonymous = AnonymousAuthenticator(Fixed())
    assert await anonymous.authenticate(_request(path="/readyz")) == ANONYMOUS_USER
    assert await anonymous.authenticate(_request(path="/api")) is None
    with pytest.raises(errors.Unauthorized):
        await AnonymousAuthenticator(Fixed(error=True)).authenticate(_request(path="/readyz"))
    with pytest.raises(errors.Unauthorized) as info:
        await require_user(anonymous, _request(path="/api"))
    assert info.value.to_status()["message"] == "Unauthorized"


# --- authorization ---------------------------------------------------------------------------------

X = UserInfo("x", groups=("system:authenticated",))


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        (
            Attributes(X, "list", resource="pods", namespace="default", resource_request=True),
            'pods is forbidden: User "x" cannot list resource "pods" in API group "" in the namespace "default"',
        ),
        (
            Attributes(X, "get", "apps", "deployments", "scale", "ns1", "web", resource_request=True),
            'deployments.apps "web" is forbidden: User "x" cannot get resource "deployments/scale" '
            'in API group "apps" in the namespace "ns1"',
        ),
        (
            Attributes(X, "list", resource="nodes", resource_request=True),
            'nodes is forbidden: User "x" cannot list resource "nodes" in API group "" at the cluster scope',
        ),
        (
            Attributes(X, "get", path="/metrics"),
            'forbidden: User "x" cannot get path "/metrics"',
        ),
    ],
)
def test_forbidden_message(attrs: Attributes, message: str) -> None:
    assert forbidden_message(attrs) == message


def test_forbidden_error_status() -> None:
    attrs = Attributes(X, "delete", "apps", "deployments", namespace="ns1", name="web", resource_request=True)
    status = forbidden_error(attrs, "RBAC: no rule").to_status()
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    assert status["message"].endswith('in the namespace "ns1": RBAC: no rule')
    assert status["details"] == {"name": "web", "group": "apps", "kind": "deployments"}


@dataclass
class AllowAuthenticated:
    """A stand-in for RBAC: allows anyone in system:authenticated."""

    async def authorize(self, attrs: Attributes) -> Decision:
        return Decision(allowed="system:authenticated" in attrs.user.groups)


async def test_standard_authorizer() -> None:
    authorizer = standard_authorizer(AllowAuthenticated())
    admin = UserInfo("kubernetes-admin", groups=("system:masters", "system:authenticated"))

    def list_pods(user: UserInfo) -> Attributes:
        return Attributes(user, "list", resource="pods", namespace="default", resource_request=True)

    assert (await authorizer.authorize(list_pods(admin))).allowed
    assert (await authorizer.authorize(list_pods(X))).allowed
    assert (await authorizer.authorize(Attributes(ANONYMOUS_USER, "get", path="/healthz"))).allowed
    assert not (await authorizer.authorize(Attributes(ANONYMOUS_USER, "post", path="/healthz"))).allowed
    assert not (await authorizer.authorize(list_pods(ANONYMOUS_USER))).allowed
    with pytest.raises(errors.Forbidden) as info:
        await authorize(authorizer, Attributes(ANONYMOUS_USER, "get", path="/api"))
    assert info.value.message == 'forbidden: User "system:anonymous" cannot get path "/api"'
    await authorize(authorizer, list_pods(admin))  # allowed: returns without raising


async def test_union_authorizer_keeps_reasons() -> None:
    @dataclass
    class Deny:
        reason: str

        async def authorize(self, attrs: Attributes) -> Decision:
            return Decision(False, self.reason)

    nobody = UserInfo("nobody")
    union = UnionAuthorizer([Deny("first"), SystemMastersAuthorizer(), Deny("second"), AllowAuthenticated()])
    decision = await union.authorize(Attributes(nobody, "get", path="/api"))
    assert decision == Decision(False, "first\nsecond")
    assert (await union.authorize(Attributes(X, "get", path="/api"))).allowed
