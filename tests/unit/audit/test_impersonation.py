"""Impersonation requests and their authorization, as upstream's impersonation filter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from controlplane.api import errors
from controlplane.apiserver.authn import UserInfo
from controlplane.apiserver.authz import Attributes, Decision
from controlplane.apiserver.impersonation import ImpersonationRequest, build_requests, impersonate

ADMIN = UserInfo(name="admin", groups=("system:authenticated",))


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


class Recording:
    """Allows what `allowed` lists (resource, name) and records every question."""

    def __init__(self, *allowed: tuple[str, str]) -> None:
        self.allowed = set(allowed)
        self.asked: list[Attributes] = []

    async def authorize(self, attrs: Attributes) -> Decision:
        self.asked.append(attrs)
        return Decision(allowed=(attrs.resource, attrs.name) in self.allowed or ("*", "*") in self.allowed)


def test_requests_in_upstream_order() -> None:
    got = build_requests(
        headers(
            ("Impersonate-Uid", "u1"),
            ("Impersonate-Extra-Example.com%2Fteam", "blue"),
            ("Impersonate-Group", "g1"),
            ("Impersonate-Group", "g2"),
            ("Impersonate-User", "jane"),
        )
    )
    assert got == [
        ImpersonationRequest("User", "jane"),
        ImpersonationRequest("Group", "g1"),
        ImpersonationRequest("Group", "g2"),
        ImpersonationRequest("UserExtra", "blue", extra_key="example.com/team"),
        ImpersonationRequest("UID", "u1"),
    ]
    assert build_requests(headers(("Impersonate-User", "system:serviceaccount:ns:sa"))) == [
        ImpersonationRequest("ServiceAccount", "sa", namespace="ns")
    ]
    assert build_requests(headers(("Accept", "x"))) == []


@pytest.mark.parametrize("name", ["Impersonate-Group", "Impersonate-Uid", "Impersonate-Extra-Scopes"])
def test_anything_without_a_user_is_an_error(name: str) -> None:
    with pytest.raises(ValueError, match="without impersonating a user"):
        build_requests(headers((name, "x")))


async def test_each_request_is_authorized_with_upstream_attributes() -> None:
    authorizer = Recording(("*", "*"))
    requests = build_requests(
        headers(
            ("Impersonate-User", "jane"),
            ("Impersonate-Group", "g1"),
            ("Impersonate-Extra-Scopes", "view"),
            ("Impersonate-Uid", "u1"),
        )
    )
    user = await impersonate(authorizer, ADMIN, requests, groups_given=True)
    assert user == UserInfo(
        name="jane", uid="u1", groups=("g1", "system:authenticated"), extra={"scopes": ("view",)}
    )
    asked = [(a.verb, a.api_group, a.resource, a.subresource, a.name) for a in authorizer.asked]
    assert asked == [
        ("impersonate", "", "users", "", "jane"),
        ("impersonate", "", "groups", "", "g1"),
        ("impersonate", "authentication.k8s.io", "userextras", "scopes", "view"),
        ("impersonate", "authentication.k8s.io", "uids", "", "u1"),
    ]
    assert all(a.user is ADMIN and a.resource_request for a in authorizer.asked)


async def test_service_account_groups_and_anonymous() -> None:
    authorizer = Recording(("*", "*"))
    sa = await impersonate(
        authorizer, ADMIN, [ImpersonationRequest("ServiceAccount", "sa", namespace="ns")], groups_given=False
    )
    assert sa.name == "system:serviceaccount:ns:sa"
    assert sa.groups == ("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated")
    assert authorizer.asked[0].namespace == "ns" and authorizer.asked[0].resource == "serviceaccounts"
    anon = await impersonate(
        authorizer, ADMIN, [ImpersonationRequest("User", "system:anonymous")], groups_given=False
    )
    assert anon.groups == ("system:unauthenticated",)


async def test_first_denial_is_forbidden_with_upstream_message() -> None:
    authorizer = Recording(("users", "jane"))
    requests = [ImpersonationRequest("User", "jane"), ImpersonationRequest("Group", "admins")]
    with pytest.raises(errors.Forbidden) as caught:
        await impersonate(authorizer, UserInfo(name="x"), requests, groups_given=True)
    assert caught.value.message == (
        'groups "admins" is forbidden: User "x" cannot impersonate resource "groups" in API group "" at the cluster scope'
    )


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["Impersonate-User", "Impersonate-Group", "Impersonate-Uid", "Impersonate-Extra-K", "X"]
            ),
            st.text(min_size=0, max_size=8),
        ),
        max_size=6,
    )
)
def test_header_fuzz_never_crashes(pairs: list[tuple[str, str]]) -> None:
    users = [value for name, value in pairs if name == "Impersonate-User"]
    has_user = bool(users and users[0])  # Go's Header.Get: the first value
    try:
        got = build_requests(headers(*pairs))
    except ValueError:
        assert not has_user
        return
    assert has_user or got == []
    assert sum(r.kind in ("User", "ServiceAccount") for r in got) == (1 if has_user else 0)
