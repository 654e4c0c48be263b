"""The bearer-token union (first success wins, audience-agnostic authenticators answer for the API's
audiences only) and the lookup cache that keeps token checks off storage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from controlplane.api import errors
from controlplane.api.resources import default_registry
from controlplane.apiserver.authn import BearerTokenAuthenticator, TokenResponse, UserInfo
from controlplane.apiserver.serviceaccount_tokens import ObjectCache
from controlplane.apiserver.store import ObjectStore
from controlplane.storage import open_storage

ALICE = UserInfo("alice", groups=("system:authenticated",))
BOB = UserInfo("bob", groups=("system:authenticated",))


@dataclass
class Fixed:
    response: TokenResponse | None = None
    error: str = ""

    async def authenticate_token(
        self, token: str, audiences: Sequence[str] | None = None
    ) -> TokenResponse | None:
        if self.error:
            raise errors.Unauthorized(message=self.error)
        return self.response


async def test_first_success_wins_and_errors_only_count_without_one() -> None:
    union = BearerTokenAuthenticator(
        [Fixed(error="expired"), Fixed(), Fixed(TokenResponse(ALICE, ("api",)))], ["api"]
    )
    assert (await union.authenticate_token("t")).user == ALICE
    with pytest.raises(errors.Unauthorized, match=r"^expired$"):
        await BearerTokenAuthenticator([Fixed(error="expired"), Fixed()], ["api"]).authenticate_token("t")
    with pytest.raises(errors.Unauthorized, match=r"^invalid bearer token$"):
        await BearerTokenAuthenticator([Fixed(), Fixed()], ["api"]).authenticate_token("t")


async def test_audience_agnostic_authenticators() -> None:
    union = BearerTokenAuthenticator([Fixed(TokenResponse(BOB))], ["api"])
    response = await union.authenticate_token("t")
    assert response.audiences == ("api",)
    response = await union.authenticate_token("t", ["vault", "api"])
    assert response.audiences == ("api",)
    with pytest.raises(errors.Unauthorized):
        await union.authenticate_token("t", ["vault"])


async def test_request_header() -> None:
    union = BearerTokenAuthenticator([Fixed(TokenResponse(ALICE, ("api",)))], ["api"])

    def request(value: str | None) -> Any:
        headers = CIMultiDict({"Authorization": value} if value is not None else {})
        return make_mocked_request("GET", "/", headers=headers)

    assert await union.authenticate(request("Bearer abc")) == ALICE
    assert await union.authenticate(request(None)) is None
    assert await union.authenticate(request("Basic abc")) is None
    assert await union.authenticate(request("Bearer ")) is None


async def test_object_cache_reads_storage_once_per_ttl() -> None:
    storage = open_storage("memory://", compaction_interval=0)
    await storage.start()
    try:
        registry = default_registry()
        store = ObjectStore(storage)
        info = registry.get("", "v1", "serviceaccounts")
        assert info is not None
        now = [0.0]
        cache = ObjectCache(store, registry, ttl=1.0, clock=lambda: now[0])
        reads = 0
        real = store.get_or_none

        async def counting(*args: Any) -> Any:
            nonlocal reads
            reads += 1
            return await real(*args)

        store.get_or_none = counting  # type: ignore[method-assign,assignment]
        assert await cache.get("serviceaccounts", "ns", "bob") is None
        obj = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "bob", "namespace": "ns", "uid": "u"},
        }
        await store.create(info, obj)
        assert await cache.get("serviceaccounts", "ns", "bob") is None  # the miss is remembered too
        assert reads == 1
        now[0] = 1.0
        found = await cache.get("serviceaccounts", "ns", "bob")
        assert found is not None and found["metadata"]["uid"] == "u"
        for _ in range(100):
            await cache.get("serviceaccounts", "ns", "bob")
        assert reads == 2
        await store.delete(info, "ns", "bob", expected_revision=None)
        now[0] = 2.5
        assert await cache.get("serviceaccounts", "ns", "bob") is None  # deletion seen after the TTL
        assert await cache.get("nodes", "", "n1") is None  # cluster-scoped lookups work too
    finally:
        await storage.close()


async def test_object_cache_is_bounded() -> None:
    storage = open_storage("memory://", compaction_interval=0)
    await storage.start()
    try:
        cache = ObjectCache(
            ObjectStore(storage), default_registry(), ttl=100.0, clock=lambda: 0.0, max_entries=10
        )
        for i in range(25):
            await cache.get("serviceaccounts", "ns", f"sa-{i}")
        assert len(cache._entries) <= 10
    finally:
        await storage.close()
