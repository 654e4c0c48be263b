"""The pod state machine: phases, conditions, restarts, deletion and adoption, as the kubelet."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_bootstrap.agent.pods import (
    ANNOTATION_EXIT_CODE,
    ANNOTATION_IGNORE_SIGTERM,
    ANNOTATION_INIT_SECONDS,
    ANNOTATION_READY,
    ANNOTATION_RUN_SECONDS,
    ANNOTATION_START_DELAY,
    Backoff,
    SimPod,
    behaviour_from,
    go_duration,
    normalize_image,
    qos_class,
)

T0 = 1_780_000_000.0
HOST = ["10.0.0.5"]


def make_pod(
    *,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
    restart_policy: str = "Always",
    **spec: Any,
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {
            "name": "web-0",
            "namespace": "ns",
            "uid": "uid-1",
            "resourceVersion": "5",
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "nodeName": "n1",
            "restartPolicy": restart_policy,
            "containers": containers or [{"name": "web", "image": "nginx:1.25"}],
            **spec,
        },
        "status": {"phase": "Pending"},
    }
    if init:
        pod["spec"]["initContainers"] = init
    return pod


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def started(pod: dict[str, Any], now: float = T0, **kw: Any) -> SimPod:
    sim = SimPod.adopt(pod, now, host_ips=HOST, **kw)
    sim.advance(now)
    sim.set_sandbox(["10.244.1.2"], now)
    sim.advance(now)
    return sim


def test_first_status_is_pending_container_creating_without_sandbox() -> None:
    sim = SimPod.adopt(make_pod(), T0, host_ips=HOST)
    sim.advance(T0)
    assert sim.needs_sandbox
    status = sim.status({"phase": "Pending"}, T0)
    assert status["phase"] == "Pending"
    assert "podIP" not in status
    assert status["hostIP"] == "10.0.0.5" and status["hostIPs"] == [{"ip": "10.0.0.5"}]
    assert status["startTime"] == "2026-05-28T20:26:40Z"
    (cs,) = status["containerStatuses"]
    assert cs["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert cs["ready"] is False and cs["started"] is False and cs["restartCount"] == 0
    assert cs["image"] == "docker.io/library/nginx:1.25" and cs["imageID"] == ""
    assert "containerID" not in cs
    conds = conditions(status)
    assert [c["type"] for c in status["conditions"]] == [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    assert conds["PodReadyToStartContainers"]["status"] == "False"
    assert conds["Initialized"]["status"] == "True"
    assert conds["Ready"] == {
        "type": "Ready",
        "status": "False",
        "lastProbeTime": None,
        "lastTransitionTime": "2026-05-28T20:26:40Z",
        "reason": "ContainersNotReady",
        "message": "containers with unready status: [web]",
    }
    assert conds["ContainersReady"]["message"] == "containers with unready status: [web]"
    assert status["qosClass"] == "BestEffort"


def test_sandbox_then_running_and_ready() -> None:
    sim = started(make_pod())
    status = sim.status({}, T0)
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.244.1.2" and status["podIPs"] == [{"ip": "10.244.1.2"}]
    (cs,) = status["containerStatuses"]
    assert cs["state"] == {"running": {"startedAt": "2026-05-28T20:26:40Z"}}
    assert cs["ready"] is True and cs["started"] is True
    assert cs["containerID"].startswith("containerd://") and len(cs["containerID"]) == 13 + 64
    assert cs["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert all(c["status"] == "True" for c in status["conditions"])
    assert sim.next_deadline(T0) is None


def test_host_network_pod_gets_host_ip() -> None:
    sim = SimPod.adopt(make_pod(hostNetwork=True), T0, host_ips=HOST)
    sim.set_sandbox([], T0)
    assert sim.status({}, T0)["podIP"] == "10.0.0.5"


def test_start_delay_keeps_container_creating_until_due() -> None:
    sim = started(make_pod(annotations={ANNOTATION_START_DELAY: "3"}))
    status = sim.status({}, T0)
    assert status["phase"] == "Pending"
    assert conditions(status)["PodReadyToStartContainers"]["status"] == "True"
    assert sim.next_deadline(T0) == T0 + 3
    sim.advance(T0 + 3)
    assert sim.status({}, T0 + 3)["phase"] == "Running"
    messages = [e.message for e in sim.take_events()]
    assert messages[:3] == [
        'Pulling image "nginx:1.25"',
        'Successfully pulled image "nginx:1.25" in 3s',
        "Created container web",
    ]


def test_readiness_probe_initial_delay_is_honoured() -> None:
    pod = make_pod(
        containers=[{"name": "web", "image": "nginx", "readinessProbe": {"initialDelaySeconds": 5}}]
    )
    sim = started(pod)
    assert sim.status({}, T0)["containerStatuses"][0]["ready"] is False
    assert sim.next_deadline(T0) == T0 + 5
    sim.advance(T0 + 5)
    assert sim.status({}, T0 + 5)["containerStatuses"][0]["ready"] is True


def test_readiness_annotation_flips_a_running_pod_and_keeps_transition_times() -> None:
    pod = make_pod()
    sim = started(pod)
    first = sim.status({}, T0)
    pod["metadata"]["annotations"][ANNOTATION_READY] = "false"
    sim.observe(pod, T0 + 10)
    sim.advance(T0 + 10)
    second = sim.status(first, T0 + 10)
    conds = conditions(second)
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "ContainersNotReady"
    assert conds["Ready"]["lastTransitionTime"] == "2026-05-28T20:26:50Z"
    assert conds["Initialized"]["lastTransitionTime"] == "2026-05-28T20:26:40Z"
    assert second["phase"] == "Running"
    assert any(
        'Readiness probe failed: sim.pinnace.dev/ready is "false"' in e.message for e in sim.take_events()
    )
    pod["metadata"]["annotations"][ANNOTATION_READY] = "true"
    sim.observe(pod, T0 + 20)
    sim.advance(T0 + 20)
    assert conditions(sim.status(second, T0 + 20))["Ready"]["status"] == "True"


def test_run_seconds_with_restart_never_succeeds() -> None:
    sim = started(make_pod(restart_policy="Never", annotations={ANNOTATION_RUN_SECONDS: "2"}))
    assert sim.next_deadline(T0) == T0 + 2
    sim.advance(T0 + 2)
    status = sim.status({}, T0 + 2)
    assert status["phase"] == "Succeeded"
    assert sim.terminal
    (cs,) = status["containerStatuses"]
    assert cs["state"]["terminated"]["exitCode"] == 0
    assert cs["state"]["terminated"]["reason"] == "Completed"
    assert cs["state"]["terminated"]["finishedAt"] == "2026-05-28T20:26:42Z"
    conds = conditions(status)
    assert conds["Ready"]["reason"] == "PodCompleted" and conds["ContainersReady"]["reason"] == "PodCompleted"
    assert conds["PodReadyToStartContainers"]["status"] == "False"
    assert conds["Initialized"]["reason"] == "PodCompleted"
    assert sim.next_deadline(T0 + 2) is None


def test_exit_code_with_restart_never_fails() -> None:
    sim = started(make_pod(restart_policy="Never", annotations={ANNOTATION_EXIT_CODE: "3"}))
    status = sim.status({}, T0)
    assert status["phase"] == "Failed"
    term = status["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert conditions(status)["Ready"]["reason"] == "PodFailed"


def test_on_failure_restarts_with_crash_loop_back_off() -> None:
    pod = make_pod(restart_policy="OnFailure", annotations={ANNOTATION_EXIT_CODE: "1"})
    sim = started(pod, backoff=Backoff(base=10, maximum=40))
    status = sim.status({}, T0)
    (cs,) = status["containerStatuses"]
    # The first crash restarts at once; the second waits 10 s.
    assert cs["restartCount"] == 1
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["state"]["waiting"]["message"] == (
        "back-off 10s restarting failed container=web pod=web-0_ns(uid-1)"
    )
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert status["phase"] == "Running"
    assert sim.next_deadline(T0) == T0 + 10
    sim.advance(T0 + 10)
    cs = sim.status({}, T0 + 10)["containerStatuses"][0]
    assert cs["restartCount"] == 2
    assert cs["state"]["waiting"]["message"].startswith("back-off 20s ")
    sim.advance(T0 + 30)
    sim.advance(T0 + 70)
    cs = sim.status({}, T0 + 70)["containerStatuses"][0]
    assert cs["state"]["waiting"]["message"].startswith("back-off 40s ")  # capped


def test_always_restarts_a_container_that_exits_cleanly() -> None:
    sim = started(make_pod(annotations={ANNOTATION_RUN_SECONDS: "5"}))
    sim.advance(T0 + 5)
    status = sim.status({}, T0 + 5)
    (cs,) = status["containerStatuses"]
    assert status["phase"] == "Running"
    assert cs["restartCount"] == 1 and "running" in cs["state"]
    assert cs["lastState"]["terminated"]["reason"] == "Completed"
    assert cs["containerID"] != cs["lastState"]["terminated"]["containerID"]
    events = sim.take_events()
    assert any(e.new_run and e.message == "Created container web" for e in events)


def test_init_containers_run_in_order_before_app_containers() -> None:
    pod = make_pod(
        init=[{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}],
        annotations={ANNOTATION_INIT_SECONDS: "2"},
    )
    sim = SimPod.adopt(pod, T0, host_ips=HOST)
    sim.advance(T0)
    first = sim.status({}, T0)
    assert first["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert conditions(first)["Initialized"]["message"] == "containers with incomplete status: [a b]"
    sim.set_sandbox(["10.244.1.9"], T0)
    sim.advance(T0)
    status = sim.status(first, T0)
    init = {c["name"]: c for c in status["initContainerStatuses"]}
    assert "running" in init["a"]["state"] and "waiting" in init["b"]["state"]
    assert status["phase"] == "Pending"
    sim.advance(T0 + 2)
    init = {c["name"]: c for c in sim.status({}, T0 + 2)["initContainerStatuses"]}
    assert init["a"]["state"]["terminated"]["reason"] == "Completed" and init["a"]["ready"] is True
    assert "running" in init["b"]["state"]
    sim.advance(T0 + 4)
    status = sim.status({}, T0 + 4)
    assert status["phase"] == "Running"
    assert conditions(status)["Initialized"]["status"] == "True"


def test_sidecar_init_container_keeps_running() -> None:
    pod = make_pod(init=[{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}])
    sim = started(pod)
    status = sim.status({}, T0)
    assert status["phase"] == "Running"
    assert "running" in status["initContainerStatuses"][0]["state"]
    assert conditions(status)["ContainersReady"]["status"] == "True"


def test_graceful_deletion_stops_containers_at_once_on_sigterm() -> None:
    pod = make_pod()
    sim = started(pod)
    pod["metadata"]["deletionTimestamp"] = "2026-05-28T20:27:10Z"
    pod["metadata"]["deletionGracePeriodSeconds"] = 30
    sim.observe(pod, T0 + 1)
    sim.advance(T0 + 1)
    assert sim.deletable
    status = sim.status({}, T0 + 1)
    assert status["phase"] == "Succeeded"
    assert status["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_ignore_sigterm_waits_for_the_grace_period_then_kills() -> None:
    pod = make_pod(annotations={ANNOTATION_IGNORE_SIGTERM: "true"})
    sim = started(pod)
    pod["metadata"]["deletionTimestamp"] = "x"
    pod["metadata"]["deletionGracePeriodSeconds"] = 5
    sim.observe(pod, T0)
    sim.advance(T0)
    assert not sim.deletable
    assert sim.next_deadline(T0) == T0 + 5
    sim.advance(T0 + 5)
    assert sim.deletable
    status = sim.status({}, T0 + 5)
    term = status["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 137 and term["reason"] == "Error"
    assert status["phase"] == "Failed"


def test_deleting_a_pod_that_never_started() -> None:
    pod = make_pod()
    pod["metadata"]["deletionTimestamp"] = "x"
    pod["metadata"]["deletionGracePeriodSeconds"] = 30
    sim = SimPod.adopt(pod, T0, host_ips=HOST)
    sim.advance(T0)
    assert sim.deletable and not sim.needs_sandbox
    term = sim.status({}, T0)["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "ContainerStatusUnknown"
    assert term["message"] == "The container could not be located when the pod was terminated"


def test_active_deadline_fails_the_pod() -> None:
    sim = started(make_pod(activeDeadlineSeconds=30))
    assert sim.next_deadline(T0) == T0 + 30
    sim.advance(T0 + 30)
    status = sim.status({}, T0 + 30)
    assert status["phase"] == "Failed"
    assert status["reason"] == "DeadlineExceeded"
    assert status["message"] == "Pod was active on the node longer than the specified deadline"


def test_adoption_continues_a_running_container() -> None:
    pod = make_pod(annotations={ANNOTATION_RUN_SECONDS: "100"}, restart_policy="Never")
    sim = started(pod)
    status = sim.status({}, T0)
    pod["status"] = status
    adopted = SimPod.adopt(pod, T0 + 40, host_ips=HOST)
    adopted.advance(T0 + 40)
    again = adopted.status(status, T0 + 40)
    assert again["containerStatuses"] == status["containerStatuses"]
    assert again["podIP"] == "10.244.1.2" and not adopted.needs_sandbox
    assert again["conditions"] == status["conditions"]
    # It still exits 100 s after it started, not after the adoption.
    assert adopted.next_deadline(T0 + 40) == T0 + 100


def test_adopted_terminal_pod_stays_terminal() -> None:
    pod = make_pod(restart_policy="Never", annotations={ANNOTATION_RUN_SECONDS: "0"})
    sim = started(pod)
    pod["status"] = sim.status({}, T0)
    adopted = SimPod.adopt(pod, T0 + 5, host_ips=HOST)
    adopted.advance(T0 + 5)
    assert adopted.terminal and adopted.status(pod["status"], T0 + 5)["phase"] == "Succeeded"


def test_conditions_of_others_are_kept() -> None:
    sim = started(make_pod(readinessGates=[{"conditionType": "example.com/gate"}]))
    old = {"conditions": [{"type": "example.com/gate", "status": "False", "lastTransitionTime": "t"}]}
    status = sim.status(old, T0)
    conds = conditions(status)
    assert conds["example.com/gate"]["lastTransitionTime"] == "t"
    assert conds["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert (
        conds["Ready"]["message"]
        == 'the status of pod readiness gate "example.com/gate" is not "True", but False'
    )
    assert status["conditions"][0]["type"] == "example.com/gate"


def test_behaviour_reports_unparsable_annotations() -> None:
    b = behaviour_from(
        {ANNOTATION_RUN_SECONDS: "soon", ANNOTATION_READY: "maybe", ANNOTATION_EXIT_CODE: "300"}
    )
    assert b.run_seconds is None and b.ready is True and b.exit_code == 0
    assert len(b.problems) == 3


@pytest.mark.parametrize(
    ("image", "reported"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
    ],
)
def test_normalize_image(image: str, reported: str) -> None:
    assert normalize_image(image)[0] == reported


@pytest.mark.parametrize(
    ("spec", "qos"),
    [
        ({"containers": [{"name": "a"}]}, "BestEffort"),
        ({"containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]}, "Burstable"),
        (
            {
                "containers": [
                    {
                        "name": "a",
                        "resources": {
                            "requests": {"cpu": "0.1", "memory": "1Gi"},
                            "limits": {"cpu": "100m", "memory": "1024Mi"},
                        },
                    }
                ]
            },
            "Guaranteed",
        ),
        (
            {
                "containers": [
                    {
                        "name": "a",
                        "resources": {
                            "limits": {"cpu": "1", "memory": "1Gi"},
                            "requests": {"cpu": "500m", "memory": "1Gi"},
                        },
                    }
                ]
            },
            "Burstable",
        ),
    ],
)
def test_qos_class(spec: dict[str, Any], qos: str) -> None:
    assert qos_class(spec) == qos


@pytest.mark.parametrize(("seconds", "text"), [(10, "10s"), (80, "1m20s"), (300, "5m0s"), (3600, "1h0m0s")])
def test_go_duration(seconds: int, text: str) -> None:
    assert go_duration(seconds) == text


@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=12))
def test_any_sequence_of_times_never_schedules_the_past(offsets: list[int]) -> None:
    pod = make_pod(
        restart_policy="OnFailure", annotations={ANNOTATION_RUN_SECONDS: "7", ANNOTATION_EXIT_CODE: "1"}
    )
    sim = started(pod, backoff=Backoff(base=10, maximum=60))
    now = T0
    restarts = 0
    for offset in offsets:
        now += offset
        sim.advance(now)
        deadline = sim.next_deadline(now)
        assert deadline is not None and deadline > now  # a crash loop always has a next step
        status = sim.status({}, now)
        assert status["phase"] == "Running"
        count = status["containerStatuses"][0]["restartCount"]
        assert count >= restarts
        restarts = count
    # Crashing every 7 s with back-off 0, 10, 20, 40, 60, 60 ...: restarts happen while time passes.
    assert (restarts > 0) == (now - T0 >= 7)


def test_adopted_exited_container_of_an_always_pod_is_restarted() -> None:
    pod = make_pod()
    pod["status"] = {
        "phase": "Running",
        "startTime": "2026-05-28T20:26:40Z",
        "podIP": "10.244.1.2",
        "containerStatuses": [
            {
                "name": "web",
                "state": {
                    "terminated": {
                        "exitCode": 2,
                        "reason": "Error",
                        "startedAt": "2026-05-28T20:26:40Z",
                        "finishedAt": "2026-05-28T20:26:45Z",
                        "containerID": "containerd://abc",
                    }
                },
                "lastState": {},
                "ready": False,
                "restartCount": 0,
                "image": "docker.io/library/nginx:1.25",
                "imageID": "",
                "containerID": "containerd://abc",
                "started": False,
            }
        ],
    }
    sim = SimPod.adopt(pod, T0 + 60, host_ips=HOST)
    sim.advance(T0 + 60)
    (cs,) = sim.status(pod["status"], T0 + 60)["containerStatuses"]
    assert cs["restartCount"] == 1 and "running" in cs["state"]
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert any("had exited with code 2" in e.message for e in sim.take_events())
