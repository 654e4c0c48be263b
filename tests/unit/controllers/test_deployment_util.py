"""Pure Deployment helpers: surge arithmetic, the template hash, revisions and annotations."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.controllers import deployment_util as du

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def deployment(
    replicas: int = 10,
    surge: int | str = "25%",
    unavailable: int | str = "25%",
    strategy: str = "RollingUpdate",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": strategy},
        "template": template("nginx:1"),
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    }
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "uid": "d-uid",
            "generation": 1,
            "annotations": annotations or {},
        },
        "spec": spec,
        "status": {},
    }


def template(image: str, extra_label: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web", **(extra_label or {})}},
        "spec": {"containers": [{"name": "c", "image": image}]},
    }


def rs(
    name: str,
    replicas: int,
    *,
    image: str = "nginx:1",
    revision: str | None = None,
    created: str = "2026-01-01T00:00:00Z",
    available: int = 0,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    ann = dict(annotations or {})
    if revision is not None:
        ann[du.REVISION_ANNOTATION] = revision
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": created, "annotations": ann},
        "spec": {"replicas": replicas, "template": template(image, {"pod-template-hash": name})},
        "status": {"replicas": replicas, "availableReplicas": available},
    }


@pytest.mark.parametrize(
    ("value", "total", "up", "expected"),
    [
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("25%", 4, False, 1),
        ("0%", 10, True, 0),
        ("100%", 7, False, 7),
        (3, 10, True, 3),
        ("1%", 1, True, 1),
        ("1%", 1, False, 0),
    ],
)
def test_scaled_value(value: int | str, total: int, up: bool, expected: int) -> None:
    assert du.scaled_value(value, total, up) == expected


@pytest.mark.parametrize("bad", ["25", "x%", None])
def test_scaled_value_rejects_what_upstream_rejects(bad: str | None) -> None:
    with pytest.raises(ValueError):
        du.scaled_value(bad, 10, True)


def test_fenceposts_never_both_zero() -> None:
    assert du.resolve_fenceposts("0%", "10%", 3) == (0, 1)
    assert du.resolve_fenceposts(None, None, 3) == (0, 1)
    assert du.resolve_fenceposts("25%", "25%", 10) == (3, 2)


def test_max_unavailable_and_surge_by_strategy() -> None:
    assert du.max_surge(deployment()) == 3
    assert du.max_unavailable(deployment()) == 2
    assert du.max_unavailable(deployment(replicas=2, unavailable=5)) == 2  # capped at replicas
    assert du.max_unavailable(deployment(replicas=0)) == 0
    recreate = deployment(strategy="Recreate")
    assert du.max_surge(recreate) == du.max_unavailable(recreate) == 0
    assert du.min_available(recreate) == 0


def test_hash_is_stable_ignores_empties_and_moves_with_collisions() -> None:
    t = template("nginx:1")
    h = du.compute_hash(t, None)
    assert h == du.compute_hash(copy.deepcopy(t), None)
    assert set(h) <= set("456789bcdf") and 1 <= len(h) <= 10
    noisy = copy.deepcopy(t)
    noisy["metadata"]["creationTimestamp"] = None
    noisy["spec"]["containers"][0]["resources"] = {}
    assert du.compute_hash(noisy, None) == h
    assert du.compute_hash(template("nginx:2"), None) != h
    hashes = {du.compute_hash(t, n) for n in range(200)}
    assert len(hashes) == 200
    assert du.compute_hash(t, 0) != h


def test_equal_ignore_hash() -> None:
    a = template("nginx:1", {"pod-template-hash": "abc"})
    b = template("nginx:1")
    b["metadata"]["creationTimestamp"] = None
    assert du.equal_ignore_hash(a, b)
    assert not du.equal_ignore_hash(a, template("nginx:2"))
    assert not du.equal_ignore_hash(template("nginx:1", {"x": "y"}), b)


def test_find_new_and_old_replica_sets() -> None:
    d = deployment()
    old = rs("old", 3, image="nginx:0", created="2025-01-01T00:00:00Z")
    newer_dup = rs("dup", 0, created="2026-02-01T00:00:00Z")
    new = rs("new", 2, created="2026-01-01T00:00:00Z")
    empty_old = rs("empty", 0, image="nginx:0")
    assert du.find_new_replica_set(d, [old, newer_dup, new])["metadata"]["name"] == "new"  # oldest match
    required, every = du.find_old_replica_sets(d, [old, new, empty_old])
    assert [r["metadata"]["name"] for r in required] == ["old"]
    assert [r["metadata"]["name"] for r in every] == ["old", "empty"]
    assert du.find_new_replica_set(deployment(), [old]) is None


def test_find_active_or_latest() -> None:
    a = rs("a", 0, created="2025-01-01T00:00:00Z")
    b = rs("b", 0, created="2025-06-01T00:00:00Z")
    assert du.find_active_or_latest(None, [a, b]) is b
    assert du.find_active_or_latest(a, [b]) is a
    c = rs("c", 3)
    assert du.find_active_or_latest(a, [b, c]) is c
    assert du.find_active_or_latest(rs("n", 1), [c]) is None
    assert du.find_active_or_latest(None, []) is None


def test_revisions() -> None:
    rss = [rs("a", 0, revision="3"), rs("b", 0, revision="7"), rs("c", 0, revision="x"), rs("d", 0)]
    assert du.max_revision(rss) == 7
    assert du.last_revision(rss) == 3
    with pytest.raises(ValueError):
        du.revision(rss[2])
    ordered = du.sort_by_revision([rs("n", 0, revision="10"), rs("m", 0, revision="9")])
    assert [r["metadata"]["name"] for r in ordered] == ["m", "n"]  # numerically, not as text


def test_new_replica_set_annotations_on_create() -> None:
    d = deployment(annotations={"kubernetes.io/change-cause": "v1", du.REVISION_ANNOTATION: "9"})
    new = rs("new", 0)
    assert du.set_new_replica_set_annotations(d, new, "4", exists=False)
    assert new["metadata"]["annotations"] == {
        "kubernetes.io/change-cause": "v1",
        du.REVISION_ANNOTATION: "4",
        du.DESIRED_REPLICAS_ANNOTATION: "10",
        du.MAX_REPLICAS_ANNOTATION: "13",
    }
    assert not du.set_new_replica_set_annotations(d, new, "4", exists=True)


def test_rollback_keeps_revision_history() -> None:
    d = deployment()
    back = rs("old", 0, revision="1")
    assert du.set_new_replica_set_annotations(d, back, "3", exists=True)
    assert back["metadata"]["annotations"][du.REVISION_ANNOTATION] == "3"
    assert back["metadata"]["annotations"][du.REVISION_HISTORY_ANNOTATION] == "1"
    du.set_new_replica_set_annotations(d, back, "5", exists=True)
    assert back["metadata"]["annotations"][du.REVISION_HISTORY_ANNOTATION] == "1,3"
    # A smaller revision never lowers the annotation.
    assert not du.set_new_replica_set_annotations(d, back, "2", exists=True)


def test_revision_history_is_bounded() -> None:
    d = deployment()
    back = rs("old", 0, revision="1000", annotations={du.REVISION_HISTORY_ANNOTATION: "1,22,333"})
    du.set_new_replica_set_annotations(d, back, "1001", exists=True, limit=12)
    assert back["metadata"]["annotations"][du.REVISION_HISTORY_ANNOTATION] == "22,333,1000"
    du.set_new_replica_set_annotations(d, back, "1002", exists=True, limit=10)
    assert back["metadata"]["annotations"][du.REVISION_HISTORY_ANNOTATION] == "1000,1001"


def test_rollback_annotations_and_template() -> None:
    d = deployment(annotations={du.REVISION_ANNOTATION: "4", "kubernetes.io/change-cause": "v2", "team": "a"})
    target = rs(
        "old",
        0,
        image="nginx:0",
        annotations={"kubernetes.io/change-cause": "v1", du.DESIRED_REPLICAS_ANNOTATION: "3"},
    )
    du.set_deployment_annotations_to(d, target)
    assert d["metadata"]["annotations"] == {du.REVISION_ANNOTATION: "4", "kubernetes.io/change-cause": "v1"}
    du.set_from_replica_set_template(d, target["spec"]["template"])
    assert d["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:0"


def test_new_rs_replicas_respects_surge() -> None:
    d = deployment()
    old, new = rs("old", 10), rs("new", 0)
    assert du.new_rs_new_replicas(d, [old, new], new) == 3
    assert du.new_rs_new_replicas(d, [rs("old", 8), rs("new", 3)], rs("new", 3)) == 5
    assert du.new_rs_new_replicas(d, [rs("old", 10), rs("new", 3)], rs("new", 3)) == 3
    assert du.new_rs_new_replicas(d, [rs("old", 0), rs("new", 9)], rs("new", 9)) == 10
    assert du.new_rs_new_replicas(deployment(strategy="Recreate"), [old, new], new) == 10


def test_is_saturated() -> None:
    d = deployment(replicas=3)
    full = rs("new", 3, available=3, annotations={du.DESIRED_REPLICAS_ANNOTATION: "3"})
    assert du.is_saturated(d, full)
    assert not du.is_saturated(
        d, rs("new", 3, available=2, annotations={du.DESIRED_REPLICAS_ANNOTATION: "3"})
    )
    assert not du.is_saturated(d, rs("new", 3, available=3))
    assert not du.is_saturated(d, None)


def test_proportion_of_a_resize() -> None:
    d = deployment(replicas=20)
    old = rs("old", 8, annotations={du.MAX_REPLICAS_ANNOTATION: "13"})
    assert du.replica_set_fraction(old, d) == 7  # 8 * 25 / 13 = 15.4 -> 15
    assert du.get_proportion(old, d, 12, 0) == 7
    assert du.get_proportion(old, d, 5, 0) == 5  # never more than allowed
    to_zero = deployment(replicas=0)
    assert du.replica_set_fraction(old, to_zero) == -8
    assert du.get_proportion(rs("idle", 0), d, 12, 0) == 0


def test_conditions_keep_transition_time_when_status_holds() -> None:
    status: dict[str, Any] = {}
    du.set_condition(status, du.new_condition("Progressing", "True", "A", "m", NOW))
    later = datetime(2026, 3, 1, 13, 0, 0, tzinfo=UTC)
    du.set_condition(status, du.new_condition("Progressing", "True", "A", "other", later))
    assert status["conditions"][0]["message"] == "m"  # same status and reason: unchanged
    du.set_condition(status, du.new_condition("Progressing", "True", "B", "m2", later))
    (cond,) = status["conditions"]
    assert cond["lastTransitionTime"] == "2026-03-01T12:00:00Z"
    assert cond["lastUpdateTime"] == "2026-03-01T13:00:00Z"
    du.set_condition(status, du.new_condition("Available", "True", "X", "y", later))
    assert [c["type"] for c in status["conditions"]] == ["Progressing", "Available"]
    du.remove_condition(status, "Progressing")
    du.remove_condition(status, "Available")
    assert "conditions" not in status


def test_calculate_status() -> None:
    d = deployment(replicas=10)
    old = rs("old", 8, available=8)
    new = rs("new", 5, available=1)
    new["status"]["readyReplicas"] = 2
    status = du.calculate_status([old, new], new, d, NOW)
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 1,
        "replicas": 13,
        "updatedReplicas": 5,
        "readyReplicas": 2,
        "availableReplicas": 9,
        "unavailableReplicas": 4,
    }
    (cond,) = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Available", "True", "MinimumReplicasAvailable")
    low = du.calculate_status([rs("old", 8, available=7)], None, d, NOW)
    assert low["conditions"][0]["reason"] == "MinimumReplicasUnavailable"
    assert du.status_equal(status, copy.deepcopy(status))
    assert not du.status_equal(status, low)


@given(
    replicas=st.integers(0, 50),
    surge=st.one_of(st.integers(0, 20), st.integers(0, 100).map(lambda p: f"{p}%")),
    unavailable=st.one_of(st.integers(0, 20), st.integers(0, 100).map(lambda p: f"{p}%")),
)
def test_fenceposts_properties(replicas: int, surge: int | str, unavailable: int | str) -> None:
    s, u = du.resolve_fenceposts(surge, unavailable, replicas)
    assert s >= 0 and u >= 0 and (s, u) != (0, 0)
    if isinstance(surge, str):
        assert s * 100 >= int(surge[:-1]) * replicas > (s - 1) * 100  # rounded up
    if isinstance(unavailable, str) and u > 0 and (s, u) != (0, 1):
        assert u * 100 <= int(unavailable[:-1]) * replicas < (u + 1) * 100  # rounded down
