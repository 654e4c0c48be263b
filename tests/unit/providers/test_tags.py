from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from providers.model import Owner
from providers.tags import (
    OWNER_KIND_TAG,
    OWNER_NAME_TAG,
    OWNER_UID_TAG,
    SERVICE_NAME_TAG,
    cluster_tag_key,
    default_load_balancer_name,
    is_owned,
    owner_from_tags,
    owner_tags,
    short_hash,
)

_dns_label = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=20)


def test_service_owner_tags_match_upstream_and_ours() -> None:
    owner = Owner(kind="Service", name="web", namespace="shop", uid="1234")
    assert owner_tags("prod", owner) == {
        "kubernetes.io/cluster/prod": "owned",
        SERVICE_NAME_TAG: "shop/web",
        OWNER_KIND_TAG: "Service",
        OWNER_NAME_TAG: "shop/web",
        OWNER_UID_TAG: "1234",
    }


def test_node_owner_has_no_namespace_and_no_service_tag() -> None:
    tags = owner_tags("prod", Owner(kind="Node", name="ip-10-0-0-4"))
    assert tags == {
        "kubernetes.io/cluster/prod": "owned",
        OWNER_KIND_TAG: "Node",
        OWNER_NAME_TAG: "ip-10-0-0-4",
    }
    assert owner_from_tags(tags) == Owner(kind="Node", name="ip-10-0-0-4")


@settings(max_examples=50, deadline=None)
@given(
    kind=st.sampled_from(["Service", "Node", "Machine"]),
    name=_dns_label,
    namespace=st.one_of(st.just(""), _dns_label),
    uid=st.one_of(st.just(""), st.uuids().map(str)),
    cluster=_dns_label,
)
def test_owner_round_trips_through_tags(kind: str, name: str, namespace: str, uid: str, cluster: str) -> None:
    owner = Owner(kind=kind, name=name, namespace=namespace, uid=uid)
    tags = owner_tags(cluster, owner)
    assert owner_from_tags(tags) == owner
    assert is_owned(tags, cluster)
    assert not is_owned(tags, cluster + "x")


def test_shared_is_not_owned_and_untagged_has_no_owner() -> None:
    assert not is_owned({cluster_tag_key("c"): "shared"}, "c")
    assert owner_from_tags({"Name": "x"}) is None
    assert owner_from_tags({OWNER_KIND_TAG: "Node"}) is None


def test_default_load_balancer_name_is_upstreams() -> None:
    # cloudprovider.DefaultLoadBalancerName: "a" + UID without dashes, cut to 32 characters.
    assert (
        default_load_balancer_name("0f6ed7a4-4c0a-4d43-9d8f-3f5b4f2c1a2b")
        == "a0f6ed7a44c0a4d439d8f3f5b4f2c1a2"
    )
    assert default_load_balancer_name("abc") == "aabc"


@given(st.lists(st.text(max_size=10), min_size=1, max_size=4), st.integers(min_value=1, max_value=64))
def test_short_hash_is_stable_and_sized(parts: list[str], length: int) -> None:
    value = short_hash(*parts, length=length)
    assert value == short_hash(*parts, length=length)
    assert len(value) == length
    assert all(c in "0123456789abcdef" for c in value)


def test_short_hash_separates_parts() -> None:
    assert short_hash("ab", "c") != short_hash("a", "bc")
