"""Conditions, pool specs and durations, tokens and their RBAC, and which pods a drain evicts."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ccm.provisioning import api
from ccm.provisioning.conditions import set_condition
from ccm.provisioning.drain import MIRROR_ANNOTATION, pods_to_evict
from ccm.provisioning.poolspec import PoolSpec, parse_duration
from ccm.provisioning.tokens import (
    bootstrap_binding,
    bootstrap_role,
    machine_token_secret,
    token_from_secret,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MACHINE = {"metadata": {"name": "pool-abcde", "uid": "u-1"}}


def test_condition_transition_time_moves_only_with_the_status() -> None:
    one = set_condition(None, "Ready", False, "A", "a", "t1")
    two = set_condition(one, "Ready", False, "B", "b", "t2")
    assert two == [
        {"type": "Ready", "status": "False", "reason": "B", "message": "b", "lastTransitionTime": "t1"}
    ]
    three = set_condition(two, "Ready", True, "C", "", "t3")
    assert three[0]["lastTransitionTime"] == "t3"
    both = set_condition(three, "Other", "Unknown", "D", "", "t4", observed_generation=2)
    assert [c["type"] for c in both] == ["Ready", "Other"] and both[1]["observedGeneration"] == 2


@given(h=st.integers(0, 50), m=st.integers(0, 59), s=st.integers(0, 59))
def test_durations_parse_as_go_does(h: int, m: int, s: int) -> None:
    assert parse_duration(f"{h}h{m}m{s}s", 0) == h * 3600 + m * 60 + s


def test_duration_fallbacks() -> None:
    assert parse_duration("1.5s", 0) == 1.5
    assert parse_duration("", 7) == 7
    assert parse_duration("ten minutes", 7) == 7
    assert parse_duration("0", 7) == 0


def test_pool_spec_reads_the_object_with_defaults() -> None:
    spec = PoolSpec.from_object(
        {
            "metadata": {"name": "p", "uid": "u", "generation": 3},
            "spec": {
                "replicas": 2,
                "zones": ["a", "b"],
                "subnets": ["s-a", "s-b"],
                "bootstrap": {"joinTimeout": "90s", "tokenTTL": "1h"},
                "remediation": {"maxUnhealthy": "50%", "notReadyTimeout": "2m"},
                "taints": [{"key": "k", "effect": "NoSchedule", "extra": "x"}],
            },
        }
    )
    assert (spec.replicas, spec.join_timeout, spec.token_ttl, spec.not_ready_timeout) == (2, 90, 3600, 120)
    assert spec.max_unhealthy == "50%" and spec.os == "ubuntu-24.04" and spec.kubernetes_version == "1.33"
    assert spec.taints == ({"key": "k", "effect": "NoSchedule"},)
    assert (spec.subnet_for("b"), spec.subnet_for("zz"), PoolSpec("q").subnet_for("a")) == ("s-b", "s-a", "")
    bare = PoolSpec.from_object({"metadata": {"name": "p"}})
    assert (bare.replicas, bare.join_timeout, bare.max_unhealthy) == (1, 600, 1)


def test_the_token_secret_is_kubeadms_with_the_machine_as_owner() -> None:
    secret = machine_token_secret("abcdef.0123456789abcdef", MACHINE, ttl_seconds=1800, now=NOW)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert secret["metadata"]["name"] == "bootstrap-token-abcdef"
    assert secret["metadata"]["namespace"] == "kube-system"
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert data["expiration"] == "2026-01-01T00:30:00Z"
    assert data["usage-bootstrap-authentication"] == data["usage-bootstrap-signing"] == "true"
    assert data["auth-extra-groups"] == "system:bootstrappers:kubeadm:default-node-token"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert secret["metadata"]["labels"] == {api.LABEL_MACHINE: "pool-abcde"}
    assert token_from_secret(secret, NOW) == "abcdef.0123456789abcdef"
    # Close to expiry, a token is not reused: the node might not join before it lapses.
    assert token_from_secret(secret, NOW + timedelta(minutes=29, seconds=30)) is None
    assert token_from_secret({"data": {"token-id": "!!"}}, NOW) is None


def test_the_node_may_only_patch_its_own_machines_status() -> None:
    role = bootstrap_role(MACHINE)
    assert role["rules"] == [
        {
            "apiGroups": [api.GROUP],
            "resources": ["machines/status"],
            "resourceNames": ["pool-abcde"],
            "verbs": ["get", "patch"],
        }
    ]
    binding = bootstrap_binding(MACHINE, "abcdef")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:bootstrap:abcdef"}
    ]
    assert role["metadata"]["ownerReferences"][0]["kind"] == "Machine"


def pod(name: str, *, owner: str = "", mirror: bool = False, deleting: bool = False) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "namespace": "ns"}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "x", "controller": True}]
    if mirror:
        meta["annotations"] = {MIRROR_ANNOTATION: "h"}
    if deleting:
        meta["deletionTimestamp"] = "t"
    return {"metadata": meta}


def test_drain_skips_daemonset_and_mirror_pods_and_waits_for_terminating_ones() -> None:
    pods = [
        pod("ds", owner="DaemonSet"),
        pod("static", mirror=True),
        pod("rs", owner="ReplicaSet"),
        pod("bye", deleting=True),
    ]
    evict, waiting = pods_to_evict(pods)
    assert [p["metadata"]["name"] for p in evict] == ["rs"]
    assert waiting == 2


def test_on_a_node_that_is_not_ready_terminating_pods_are_not_waited_for() -> None:
    pods = [pod("rs", owner="ReplicaSet"), pod("bye", deleting=True)]
    evict, waiting = pods_to_evict(pods, node_reachable=False)
    assert [p["metadata"]["name"] for p in evict] == ["rs"]
    assert waiting == 1
