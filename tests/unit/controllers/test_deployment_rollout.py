"""The Deployment controller's decisions: rolling steps (simulated to completion under random
readiness, never breaking the surge and availability limits), proportional scaling, Recreate,
history cleanup and the Progressing condition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.controllers import deployment_util as du
from controlplane.controllers.deployment_rollout import (
    ScaleStep,
    cleanup_candidates,
    old_pods_running,
    paused_condition_update,
    progress_requeue_after,
    proportional_scale_steps,
    recreate_scale_down_steps,
    rolling_steps,
    rollout_status,
)
from controlplane.controllers.podutil import status_condition
from controlplane.controllers.runtime import rfc3339

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def deployment(
    replicas: int, surge: int | str = "25%", unavailable: int | str = "25%", **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 2},
        "spec": {
            "replicas": replicas,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "v2"}]},
            },
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 2,
            **spec,
        },
        "status": {},
    }


@dataclass
class SimRS:
    """A ReplicaSet and its pods, as the ReplicaSet controller and kubelets keep them."""

    name: str
    created: int
    replicas: int
    ready: int = 0
    unready: int = 0
    max_replicas: int | None = None

    def obj(self) -> dict[str, Any]:
        annotations = (
            {} if self.max_replicas is None else {du.MAX_REPLICAS_ANNOTATION: str(self.max_replicas)}
        )
        return {
            "metadata": {
                "name": self.name,
                "uid": f"uid-{self.name}",
                "creationTimestamp": rfc3339(NOW + timedelta(seconds=self.created)),
                "annotations": annotations,
            },
            "spec": {"replicas": self.replicas},
            "status": {
                "replicas": self.ready + self.unready,
                "readyReplicas": self.ready,
                "availableReplicas": self.ready,
            },
        }

    def reconcile_pods(self) -> None:
        """The ReplicaSet controller: create missing pods, delete surplus not-ready ones first."""
        surplus = self.ready + self.unready - self.replicas
        if surplus > 0:
            from_unready = min(surplus, self.unready)
            self.unready -= from_unready
            self.ready -= surplus - from_unready
        elif surplus < 0:
            self.unready -= surplus


def apply(steps: list[ScaleStep], sims: dict[str, SimRS]) -> None:
    for step in steps:
        sim = sims[step.rs["metadata"]["name"]]
        assert step.operation == ("up" if step.size > sim.replicas else "down")
        sim.replicas = step.size


fencepost = st.one_of(st.integers(0, 4), st.sampled_from(["0%", "10%", "25%", "50%", "100%"]))


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    replicas=st.integers(1, 15),
    surge=fencepost,
    unavailable=fencepost,
    split=st.floats(0, 1),
)
def test_rolling_update_keeps_limits_and_completes(
    data: st.DataObject, replicas: int, surge: int | str, unavailable: int | str, split: float
) -> None:
    if surge in (0, "0%") and unavailable in (0, "0%"):
        return  # refused by validation
    d = deployment(replicas, surge, unavailable)
    max_total = replicas + du.max_surge(d)
    min_available = replicas - du.max_unavailable(d)
    # Two old ReplicaSets (a rollout interrupted earlier), all their pods ready.
    first = int(replicas * split)
    sims = {
        "old1": SimRS("old1", 0, first, ready=first),
        "old2": SimRS("old2", 1, replicas - first, ready=replicas - first),
    }
    new = SimRS("new", 2, 0)
    new.replicas = du.new_rs_new_replicas(d, [s.obj() for s in sims.values()], new.obj())
    sims["new"] = new
    for _ in range(400):
        for sim in sims.values():
            sim.reconcile_pods()
        assert sum(s.replicas for s in sims.values()) <= max_total
        assert sum(s.ready for s in sims.values()) >= min_available
        if new.ready == replicas and all(s.replicas == s.ready == 0 for n, s in sims.items() if n != "new"):
            return
        apply(rolling_steps(d, new.obj(), [sims["old1"].obj(), sims["old2"].obj()]), sims)
        assert sum(s.replicas for s in sims.values()) <= max_total
        # Kubelets make at least one pending pod ready.
        pending = [s for s in sims.values() if s.unready]
        if pending:
            sim = data.draw(st.sampled_from(pending))
            count = data.draw(st.integers(1, sim.unready))
            sim.unready -= count
            sim.ready += count
    raise AssertionError(f"rollout did not complete: {sims}")


def test_rolling_first_step_surges_then_retires_old() -> None:
    d = deployment(10)
    old = SimRS("old", 0, 10, ready=10).obj()
    new = SimRS("new", 1, 3).obj()
    # The new ReplicaSet is at its surge limit: the old one gives up what availability allows.
    (step,) = rolling_steps(d, new, [old])
    assert (step.rs["metadata"]["name"], step.size, step.operation) == ("old", 8, "down")
    grown = rolling_steps(d, SimRS("new", 1, 3).obj(), [SimRS("old", 0, 8, ready=8).obj()])
    assert [(s.rs["metadata"]["name"], s.size) for s in grown] == [("new", 5)]


def test_rolling_scales_unhealthy_old_replicas_first() -> None:
    d = deployment(4, surge=2, unavailable=0)
    sick = SimRS("sick", 0, 2, ready=0, unready=2).obj()
    healthy = SimRS("healthy", 1, 2, ready=2).obj()
    new = SimRS("new", 2, 2, ready=2).obj()
    # Six pods, four must stay available: two may go, and the unhealthy ones go first.
    steps = rolling_steps(d, new, [sick, healthy])
    assert [(s.rs["metadata"]["name"], s.size) for s in steps] == [("sick", 0)]
    # With room for only one, one unhealthy replica goes and nothing else.
    steps = rolling_steps(
        deployment(4, surge=1, unavailable=0), SimRS("new", 2, 1, ready=1).obj(), [sick, healthy]
    )
    assert [(s.rs["metadata"]["name"], s.size) for s in steps] == [("sick", 1)]


def test_rolling_gives_up_on_a_stale_old_status() -> None:
    d = deployment(10)
    old = SimRS("old", 0, 8, ready=10).obj()  # status still shows the pods being deleted
    new = SimRS("new", 1, 5, ready=5).obj()
    assert rolling_steps(d, new, [old]) == []


def test_proportional_scale_of_a_paused_rollout() -> None:
    d = deployment(20)
    old = SimRS("old", 0, 8, ready=8, max_replicas=13).obj()
    new = SimRS("new", 1, 5, max_replicas=13).obj()
    steps = proportional_scale_steps(d, new, [old])
    assert [(s.rs["metadata"]["name"], s.size, s.operation) for s in steps] == [
        ("old", 15, "up"),
        ("new", 10, "up"),
    ]
    smaller = proportional_scale_steps(deployment(5), new, [old])
    assert sum(s.size for s in smaller) == 5 + 2
    assert all(s.operation == "down" for s in smaller)


def test_scale_of_a_single_active_replica_set() -> None:
    only = SimRS("only", 0, 3, ready=3).obj()
    (step,) = proportional_scale_steps(deployment(7), only, [SimRS("old", 0, 0).obj()])
    assert (step.rs["metadata"]["name"], step.size, step.operation) == ("only", 7, "up")
    assert proportional_scale_steps(deployment(3), only, []) == []


def test_saturated_new_replica_set_retires_the_old() -> None:
    d = deployment(3)
    new = SimRS("new", 1, 3, ready=3).obj()
    new["metadata"]["annotations"][du.DESIRED_REPLICAS_ANNOTATION] = "3"
    steps = proportional_scale_steps(d, new, [SimRS("old", 0, 2, ready=2).obj()])
    assert [(s.rs["metadata"]["name"], s.size) for s in steps] == [("old", 0)]


@given(
    sizes=st.lists(st.integers(1, 30), min_size=2, max_size=5),
    target=st.integers(0, 60),
    surge=st.sampled_from([0, 1, 3, "25%", "50%"]),
)
def test_proportional_scaling_distributes_exactly(sizes: list[int], target: int, surge: int | str) -> None:
    before = sum(sizes)
    sims = [SimRS(f"rs{i}", i, n, ready=n, max_replicas=before) for i, n in enumerate(sizes)]
    d = deployment(target, surge=surge, unavailable=1)
    steps = proportional_scale_steps(d, sims[-1].obj(), [s.obj() for s in sims[:-1]])
    allowed = target + du.max_surge(d) if target > 0 else 0
    result = [s.size for s in steps]
    assert all(n >= 0 for n in result)
    assert sum(result) == allowed or result[0] == 0
    if target == 0:
        assert result == [0] * len(sizes)


def test_recreate_steps_and_old_pods() -> None:
    old = SimRS("old", 0, 3, ready=3).obj()
    idle = SimRS("idle", 0, 0).obj()
    assert [(s.rs["metadata"]["name"], s.size) for s in recreate_scale_down_steps([old, idle])] == [
        ("old", 0)
    ]
    drained = SimRS("old", 0, 0).obj()
    running_pod = {"status": {"phase": "Running"}}
    done_pod = {"status": {"phase": "Succeeded"}}
    assert old_pods_running(None, [drained], {"uid-old": [running_pod]})
    assert not old_pods_running(None, [drained], {"uid-old": [done_pod]})
    new = SimRS("new", 1, 3).obj()
    assert not old_pods_running(new, [drained], {"uid-new": [running_pod], "uid-old": []})
    assert old_pods_running(None, [old], {})


def test_cleanup_candidates_oldest_revisions_beyond_the_limit() -> None:
    d = deployment(3)  # revisionHistoryLimit 2
    rss = []
    for rev in (1, 2, 3, 4):
        obj = SimRS(f"r{rev}", rev, 0).obj()
        obj["metadata"]["annotations"][du.REVISION_ANNOTATION] = str(rev)
        rss.append(obj)
    rss[0]["spec"]["replicas"] = 1  # still has replicas: kept
    assert [r["metadata"]["name"] for r in cleanup_candidates(d, rss)] == ["r2"]
    rss[0]["spec"]["replicas"] = 0
    assert [r["metadata"]["name"] for r in cleanup_candidates(d, rss)] == ["r1", "r2"]
    unlimited = deployment(3, revisionHistoryLimit=None)
    assert cleanup_candidates(unlimited, rss) == []


def _progressing(status: dict[str, Any]) -> dict[str, Any]:
    cond = status_condition(status, du.PROGRESSING)
    assert cond is not None
    return cond


def test_rollout_status_progress_complete_and_timeout() -> None:
    d = deployment(2)
    d["status"] = {
        "observedGeneration": 2,
        "replicas": 2,
        "updatedReplicas": 1,
        "conditions": [du.new_condition(du.PROGRESSING, "True", du.NEW_REPLICA_SET_REASON, "created", NOW)],
    }
    old = SimRS("old", 0, 1, ready=1).obj()
    new = SimRS("new", 1, 2, ready=1, unready=1).obj()
    later = NOW + timedelta(seconds=30)
    status = rollout_status([old, new], new, d, later)
    cond = _progressing(status)
    assert (cond["reason"], cond["message"]) == (
        du.REPLICA_SET_UPDATED_REASON,
        'ReplicaSet "new" is progressing.',
    )
    assert cond["lastTransitionTime"] == rfc3339(NOW) and cond["lastUpdateTime"] == rfc3339(later)

    # No further progress: nothing changes until the deadline passes.
    d["status"] = status
    assert du.status_equal(rollout_status([old, new], new, d, later + timedelta(seconds=100)), status)
    assert progress_requeue_after(d, status, later + timedelta(seconds=100)) == 501.0
    timed_out = rollout_status([old, new], new, d, later + timedelta(seconds=601))
    cond = _progressing(timed_out)
    assert (cond["status"], cond["reason"]) == ("False", du.TIMED_OUT_REASON)
    assert cond["message"] == 'ReplicaSet "new" has timed out progressing.'
    d["status"] = timed_out
    assert progress_requeue_after(d, timed_out, later + timedelta(seconds=700)) is None

    done = SimRS("new", 1, 2, ready=2).obj()
    finished = rollout_status([SimRS("old", 0, 0).obj(), done], done, d, later)
    cond = _progressing(finished)
    assert (cond["status"], cond["reason"]) == ("True", du.NEW_RS_AVAILABLE_REASON)
    assert cond["message"] == 'ReplicaSet "new" has successfully progressed.'


def test_rollout_status_surfaces_replica_failures() -> None:
    d = deployment(2)
    new = SimRS("new", 1, 2).obj()
    failure = {
        "type": "ReplicaFailure",
        "status": "True",
        "lastTransitionTime": rfc3339(NOW),
        "reason": "FailedCreate",
        "message": "quota",
    }
    new["status"]["conditions"] = [failure]
    cond = status_condition(rollout_status([new], new, d, NOW), "ReplicaFailure")
    assert cond is not None and (cond["reason"], cond["message"], cond["lastUpdateTime"]) == (
        "FailedCreate",
        "quota",
        rfc3339(NOW),
    )
    without = rollout_status([SimRS("new", 1, 2).obj()], None, {**d, "status": {"conditions": [cond]}}, NOW)
    assert status_condition(without, "ReplicaFailure") is None


def test_no_progress_deadline_removes_progressing() -> None:
    d = deployment(1, progressDeadlineSeconds=du.MAX_INT32)
    d["status"] = {"conditions": [du.new_condition(du.PROGRESSING, "True", "X", "y", NOW)]}
    status = rollout_status([SimRS("new", 0, 1, ready=1).obj()], None, d, NOW)
    assert status_condition(status, du.PROGRESSING) is None


def test_paused_and_resumed_conditions() -> None:
    d = deployment(1, paused=True)
    status = paused_condition_update(d, NOW)
    assert status is not None
    cond = _progressing(status)
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "Unknown",
        du.PAUSED_DEPLOY_REASON,
        "Deployment is paused",
    )
    d["status"] = status
    assert paused_condition_update(d, NOW) is None
    d["spec"]["paused"] = False
    resumed = paused_condition_update(d, NOW)
    assert resumed is not None
    assert _progressing(resumed)["reason"] == du.RESUMED_DEPLOY_REASON
    d["status"] = {
        "conditions": [du.new_condition(du.PROGRESSING, "False", du.TIMED_OUT_REASON, "late", NOW)]
    }
    d["spec"]["paused"] = True
    assert paused_condition_update(d, NOW) is None  # a timeout is never overwritten
