"""Table columns and cells for built-in kinds, custom resources and the default table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.api.tables import cells, columns, has_printer, row_conditions

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def ts(delta: timedelta) -> str:
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def names(group: str, plural: str, **kw: Any) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in columns(group, plural, **kw)]


def meta(name: str, age: timedelta = timedelta(minutes=5), **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": ts(age), **extra}


# --- column definitions -----------------------------------------------------------------------


def test_pod_columns_match_upstream() -> None:
    cols = columns("", "pods")
    assert [(c["name"], c["type"], c["priority"]) for c in cols] == [
        ("Name", "string", 0),
        ("Ready", "string", 0),
        ("Status", "string", 0),
        ("Restarts", "string", 0),
        ("Age", "string", 0),
        ("IP", "string", 1),
        ("Node", "string", 1),
        ("Nominated Node", "string", 1),
        ("Readiness Gates", "string", 1),
    ]
    assert cols[0]["format"] == "name"
    assert cols[0]["description"].startswith("Name must be unique within a namespace.")
    assert cols[4]["description"].startswith("CreationTimestamp is a timestamp")
    assert set(cols[0]) == {"name", "type", "format", "description", "priority"}


@pytest.mark.parametrize(
    ("group", "plural", "expected"),
    [
        (
            "apps",
            "deployments",
            [
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ],
        ),
        (
            "",
            "services",
            [
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1),
            ],
        ),
        (
            "",
            "nodes",
            [
                ("Name", 0),
                ("Status", 0),
                ("Roles", 0),
                ("Age", 0),
                ("Version", 0),
                ("Internal-IP", 1),
                ("External-IP", 1),
                ("OS-Image", 1),
                ("Kernel-Version", 1),
                ("Container-Runtime", 1),
            ],
        ),
        (
            "",
            "events",
            [
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1),
            ],
        ),
        (
            "batch",
            "jobs",
            [
                ("Name", 0),
                ("Status", 0),
                ("Completions", 0),
                ("Duration", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ],
        ),
        ("apps", "statefulsets", [("Name", 0), ("Ready", 0), ("Age", 0), ("Containers", 1), ("Images", 1)]),
        ("", "configmaps", [("Name", 0), ("Data", 0), ("Age", 0)]),
        ("coordination.k8s.io", "leases", [("Name", 0), ("Holder", 0), ("Age", 0)]),
    ],
)
def test_builtin_columns(group: str, plural: str, expected: list[tuple[str, int]]) -> None:
    assert names(group, plural) == expected


@pytest.mark.parametrize(
    ("group", "plural"),
    [
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("", "limitranges"),
        ("example.com", "widgets"),
    ],
)
def test_resources_without_printer_use_default_table(group: str, plural: str) -> None:
    assert not has_printer(group, plural)
    cols = columns(group, plural)
    assert [(c["name"], c["type"], c["format"]) for c in cols] == [
        ("Name", "string", "name"),
        ("Created At", "date", ""),
    ]
    obj = {"metadata": {"name": "r", "creationTimestamp": "2025-01-02T03:04:05+01:00"}}
    assert cells(group, plural, obj, now=NOW) == ["r", "2025-01-02T02:04:05Z"]
    assert cells(group, plural, {"metadata": {"name": "r"}}, now=NOW) == ["r", "0001-01-01T00:00:00Z"]


def test_every_builtin_row_has_one_cell_per_column_even_for_empty_objects() -> None:
    from controlplane.api.printers import PRINTERS

    for group, plural in PRINTERS:
        row = cells(group, plural, {}, now=NOW)
        assert len(row) == len(columns(group, plural)), (group, plural)


# --- workloads --------------------------------------------------------------------------------


def test_deployment_row() -> None:
    deploy = {
        "metadata": meta("web", timedelta(days=2, hours=3)),
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.27"},
                        {"name": "sidecar", "image": "busybox"},
                    ],
                },
            },
        },
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert cells("apps", "deployments", deploy, now=NOW) == [
        "web",
        "2/3",
        3,
        2,
        "2d3h",
        "nginx,sidecar",
        "nginx:1.27,busybox",
        "app=web",
    ]


def test_deployment_selector_with_expressions_and_fresh_object() -> None:
    deploy = {
        "metadata": meta("api"),
        "spec": {
            "selector": {
                "matchLabels": {"tier": "be"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "canary"]},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ],
            },
        },
    }
    row = cells("apps", "deployments", deploy, now=NOW)
    # replicas default to 1; no status yet
    assert row[1:5] == ["0/1", 0, 0, "5m"]
    assert row[7] == "env in (canary,prod),!legacy,tier=be"
    bad = {
        "metadata": meta("x"),
        "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}},
    }
    assert cells("apps", "deployments", bad, now=NOW)[7] == "<invalid>"
    assert cells("apps", "replicasets", bad, now=NOW)[7] == "<error>"


def test_replicaset_daemonset_statefulset_rows() -> None:
    template = {"spec": {"containers": [{"name": "c", "image": "img"}], "nodeSelector": {"disk": "ssd"}}}
    rs = {
        "metadata": meta("rs"),
        "spec": {"replicas": 2, "selector": {}, "template": template},
        "status": {"replicas": 2, "readyReplicas": 1},
    }
    assert cells("apps", "replicasets", rs, now=NOW) == ["rs", 2, 2, 1, "5m", "c", "img", "<none>"]
    ds = {
        "metadata": meta("ds"),
        "spec": {"selector": {"matchLabels": {"k": "v"}}, "template": template},
        "status": {
            "desiredNumberScheduled": 3,
            "currentNumberScheduled": 3,
            "numberReady": 2,
            "updatedNumberScheduled": 3,
            "numberAvailable": 2,
        },
    }
    assert cells("apps", "daemonsets", ds, now=NOW) == [
        "ds",
        3,
        3,
        2,
        3,
        2,
        "disk=ssd",
        "5m",
        "c",
        "img",
        "k=v",
    ]
    sts = {
        "metadata": meta("db"),
        "spec": {"replicas": 3, "template": template},
        "status": {"readyReplicas": 3},
    }
    assert cells("apps", "statefulsets", sts, now=NOW) == ["db", "3/3", "5m", "c", "img"]


def test_controller_revision_names_its_controller() -> None:
    rev = {
        "metadata": meta(
            "web-7d9f",
            ownerReferences=[
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True},
            ],
        ),
        "revision": 4,
    }
    assert cells("apps", "controllerrevisions", rev, now=NOW) == ["web-7d9f", "statefulset.apps/web", 4, "5m"]


def test_job_rows() -> None:
    job = {
        "metadata": meta("pi", timedelta(minutes=10)),
        "spec": {
            "completions": 1,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}},
        },
        "status": {
            "succeeded": 1,
            "startTime": ts(timedelta(minutes=10)),
            "completionTime": ts(timedelta(minutes=7, seconds=40)),
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    assert cells("batch", "jobs", job, now=NOW) == [
        "pi",
        "Complete",
        "1/1",
        "2m20s",
        "10m",
        "pi",
        "perl",
        "batch.kubernetes.io/controller-uid=u1",
    ]
    running = {
        "metadata": meta("w"),
        "spec": {"parallelism": 3},
        "status": {"startTime": ts(timedelta(seconds=30))},
    }
    assert cells("batch", "jobs", running, now=NOW)[1:4] == ["Running", "0/1 of 3", "30s"]


def test_cronjob_row() -> None:
    cj = {
        "metadata": meta("nightly", timedelta(days=3)),
        "spec": {
            "schedule": "0 0 * * *",
            "suspend": False,
            "jobTemplate": {"spec": {"template": {"spec": {}}}},
        },
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ts(timedelta(hours=12))},
    }
    assert cells("batch", "cronjobs", cj, now=NOW) == [
        "nightly",
        "0 0 * * *",
        "<none>",
        "False",
        1,
        "12h",
        "3d",
        "",
        "",
        "<none>",
    ]


# --- pods -------------------------------------------------------------------------------------


def pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": meta("p", timedelta(hours=1)),
        "spec": {"nodeName": "node-1", "containers": [{"name": "app"}, {"name": "side"}]},
        "status": {"phase": "Running", **status},
    }


def test_running_pod_with_wide_columns() -> None:
    p = pod(
        podIP="10.0.0.5",
        podIPs=[{"ip": "10.0.0.5"}],
        containerStatuses=[
            {"name": "app", "ready": True, "restartCount": 0, "state": {"running": {}}},
            {"name": "side", "ready": True, "restartCount": 0, "state": {"running": {}}},
        ],
    )
    assert cells("", "pods", p, now=NOW) == [
        "p",
        "2/2",
        "Running",
        "0",
        "60m",
        "10.0.0.5",
        "node-1",
        "<none>",
        "<none>",
    ]


def test_crash_looping_pod_shows_waiting_reason_and_last_restart() -> None:
    p = pod(
        containerStatuses=[
            {
                "name": "app",
                "ready": False,
                "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {
                    "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ts(timedelta(minutes=3))}
                },
            },
            {"name": "side", "ready": True, "restartCount": 1, "state": {"running": {}}},
        ],
    )
    row = cells("", "pods", p, now=NOW)
    assert row[1:4] == ["1/2", "CrashLoopBackOff", "5 (3m ago)"]
    assert row[5:7] == ["<none>", "node-1"]


def test_pod_status_from_terminated_containers_and_init() -> None:
    done = pod(
        phase="Succeeded",
        containerStatuses=[
            {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "side", "state": {"terminated": {"exitCode": 137, "signal": 9}}},
        ],
    )
    # The last container listed is inspected first, so the first one's reason wins.
    assert cells("", "pods", done, now=NOW)[2] == "Completed"
    assert row_conditions("", "pods", done) == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        },
    ]
    killed = pod(containerStatuses=[{"name": "app", "state": {"terminated": {"exitCode": 137, "signal": 9}}}])
    assert cells("", "pods", killed, now=NOW)[2] == "Signal:9"

    init = pod(phase="Pending", initContainerStatuses=[{"name": "setup", "state": {"running": {}}}])
    init["spec"]["initContainers"] = [{"name": "setup"}, {"name": "migrate"}]
    assert cells("", "pods", init, now=NOW)[1:3] == ["0/2", "Init:0/2"]
    init["status"]["initContainerStatuses"] = [
        {"name": "setup", "state": {"terminated": {"exitCode": 0}}},
        {"name": "migrate", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
    ]
    assert cells("", "pods", init, now=NOW)[2] == "Init:ImagePullBackOff"


def test_sidecar_init_container_counts_as_a_container() -> None:
    p = pod(
        initContainerStatuses=[
            {"name": "proxy", "started": True, "ready": True, "restartCount": 2, "state": {"running": {}}}
        ],
        containerStatuses=[
            {"name": "app", "ready": True, "state": {"running": {}}},
            {"name": "side", "ready": True, "state": {"running": {}}},
        ],
        conditions=[{"type": "Initialized", "status": "True"}],
    )
    p["spec"]["initContainers"] = [{"name": "proxy", "restartPolicy": "Always"}]
    assert cells("", "pods", p, now=NOW)[1:4] == ["3/3", "Running", "2"]


def test_terminating_and_pending_pods() -> None:
    p = pod()
    p["metadata"]["deletionTimestamp"] = ts(timedelta(seconds=5))
    assert cells("", "pods", p, now=NOW)[2] == "Terminating"
    lost = pod(reason="NodeLost")
    lost["metadata"]["deletionTimestamp"] = ts(timedelta(seconds=5))
    assert cells("", "pods", lost, now=NOW)[2] == "Unknown"
    gated = pod(
        phase="Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
    )
    assert cells("", "pods", gated, now=NOW)[2] == "SchedulingGated"
    evicted = pod(phase="Failed", reason="Evicted")
    assert cells("", "pods", evicted, now=NOW)[2] == "Evicted"


def test_pod_readiness_gates_and_nominated_node() -> None:
    p = pod(
        nominatedNodeName="node-2",
        conditions=[{"type": "example.com/ready", "status": "True"}, {"type": "other", "status": "False"}],
    )
    p["spec"]["readinessGates"] = [{"conditionType": "example.com/ready"}, {"conditionType": "other"}]
    assert cells("", "pods", p, now=NOW)[7:] == ["node-2", "1/2"]


# --- services, endpoints, nodes ---------------------------------------------------------------


def test_nodeport_service_row() -> None:
    svc = {
        "metadata": meta("web", timedelta(seconds=42)),
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.12",
            "clusterIPs": ["10.96.0.12"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            "selector": {"app": "web", "tier": "fe"},
        },
    }
    assert cells("", "services", svc, now=NOW) == [
        "web",
        "NodePort",
        "10.96.0.12",
        "<none>",
        "80:30080/TCP,53/UDP",
        "42s",
        "app=web,tier=fe",
    ]


@pytest.mark.parametrize(
    ("spec", "status", "external"),
    [
        ({"type": "LoadBalancer"}, {}, "<pending>"),
        (
            {"type": "LoadBalancer"},
            {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example"}]}},
            "5.6.7.8,lb.example",
        ),
        (
            {"type": "LoadBalancer", "externalIPs": ["9.9.9.9"]},
            {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}},
            "1.2.3.4,9.9.9.9",
        ),
        ({"type": "ClusterIP", "externalIPs": ["1.1.1.1", "2.2.2.2"]}, {}, "1.1.1.1,2.2.2.2"),
        ({"type": "ExternalName", "externalName": "db.example.com"}, {}, "db.example.com"),
    ],
)
def test_service_external_ip(spec: dict[str, Any], status: dict[str, Any], external: str) -> None:
    row = cells("", "services", {"metadata": meta("s"), "spec": spec, "status": status}, now=NOW)
    assert row[3] == external
    assert row[4] == "<none>"


def test_endpoints_and_endpointslices() -> None:
    ep = {
        "metadata": meta("web"),
        "subsets": [
            {
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}],
                "ports": [{"port": 8080}, {"port": 9090}],
            },
        ],
    }
    assert cells("", "endpoints", ep, now=NOW) == [
        "web",
        "10.0.0.1:8080,10.0.0.2:8080,[fd00::3]:8080 + 3 more...",
        "5m",
    ]
    assert cells("", "endpoints", {"metadata": meta("none")}, now=NOW)[1] == "<none>"
    eps = {
        "metadata": meta("web-abc"),
        "addressType": "IPv4",
        "ports": [{"port": 8080, "name": "http"}, {"name": "metrics"}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
    }
    assert cells("discovery.k8s.io", "endpointslices", eps, now=NOW) == [
        "web-abc",
        "IPv4",
        "8080,metrics",
        "10.0.0.1,10.0.0.2",
        "5m",
    ]
    assert cells("discovery.k8s.io", "endpointslices", {"metadata": meta("e")}, now=NOW)[2:4] == [
        "<unset>",
        "<unset>",
    ]


def test_node_row() -> None:
    node = {
        "metadata": meta(
            "cp-1",
            timedelta(days=10),
            labels={"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "etcd", "x": "y"},
        ),
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [
                {"type": "Hostname", "address": "cp-1"},
                {"type": "InternalIP", "address": "10.0.0.10"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.33.1",
                "osImage": "Debian GNU/Linux 12",
                "containerRuntimeVersion": "containerd://1.7",
            },
        },
    }
    assert cells("", "nodes", node, now=NOW) == [
        "cp-1",
        "Ready,SchedulingDisabled",
        "control-plane,etcd",
        "10d",
        "v1.33.1",
        "10.0.0.10",
        "<none>",
        "Debian GNU/Linux 12",
        "<unknown>",
        "containerd://1.7",
    ]
    bare = cells("", "nodes", {"metadata": meta("n")}, now=NOW)
    assert bare[1:3] == ["Unknown", "<none>"]
    not_ready = {"metadata": meta("n"), "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert cells("", "nodes", not_ready, now=NOW)[1] == "NotReady"


# --- events -----------------------------------------------------------------------------------


def test_core_event_row() -> None:
    ev = {
        "metadata": meta("web.17f"),
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container\n",
        "type": "Warning",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ts(timedelta(minutes=30)),
        "lastTimestamp": ts(timedelta(seconds=20)),
        "count": 7,
    }
    assert cells("", "events", ev, now=NOW) == [
        "20s",
        "Warning",
        "BackOff",
        "pod/web-1",
        "spec.containers{app}",
        "kubelet, node-1",
        "Back-off restarting failed container",
        "30m",
        7,
        "web.17f",
    ]


def test_events_v1_event_uses_the_same_printer() -> None:
    ev = {
        "metadata": meta("sched.1"),
        "regarding": {"kind": "Pod", "name": "web-1"},
        "reason": "Scheduled",
        "note": "Successfully assigned default/web-1 to node-1",
        "type": "Normal",
        "eventTime": "2025-06-01T11:59:00.123456Z",
        "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-cp-1",
    }
    assert columns("events.k8s.io", "events") == columns("", "events")
    # eventTime is 59.88s ago: Go truncates to whole seconds.
    assert cells("events.k8s.io", "events", ev, now=NOW) == [
        "59s",
        "Normal",
        "Scheduled",
        "pod/web-1",
        "",
        "default-scheduler, default-scheduler-cp-1",
        "Successfully assigned default/web-1 to node-1",
        "59s",
        1,
        "sched.1",
    ]


# --- config, storage, access ------------------------------------------------------------------


def test_small_core_kinds() -> None:
    assert cells(
        "", "configmaps", {"metadata": meta("c"), "data": {"a": "1"}, "binaryData": {"b": "AA=="}}, now=NOW
    ) == [
        "c",
        2,
        "5m",
    ]
    secret = {"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    assert cells("", "secrets", secret, now=NOW) == ["s", "kubernetes.io/tls", 2, "5m"]
    assert cells("", "serviceaccounts", {"metadata": meta("default")}, now=NOW) == ["default", 0, "5m"]
    assert cells(
        "", "namespaces", {"metadata": meta("kube-system"), "status": {"phase": "Active"}}, now=NOW
    ) == [
        "kube-system",
        "Active",
        "5m",
    ]
    quota = {
        "metadata": meta("q"),
        "status": {
            "hard": {"requests.cpu": "2", "limits.memory": "4Gi", "pods": "10"},
            "used": {"requests.cpu": "500m", "pods": "3"},
        },
    }
    assert cells("", "resourcequotas", quota, now=NOW) == [
        "q",
        "pods: 3/10, requests.cpu: 500m/2",
        "limits.memory: 0/4Gi",
        "5m",
    ]


def test_persistent_volume_and_claim() -> None:
    pv = {
        "metadata": meta("pv-1"),
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "default", "name": "data"},
            "storageClassName": "standard",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound"},
    }
    assert cells("", "persistentvolumes", pv, now=NOW) == [
        "pv-1",
        "10Gi",
        "RWO,RWX",
        "Retain",
        "Bound",
        "default/data",
        "standard",
        "<unset>",
        "",
        "5m",
        "Filesystem",
    ]
    pvc = {
        "metadata": meta("data"),
        "spec": {
            "volumeName": "pv-1",
            "storageClassName": "standard",
            "resources": {"requests": {"storage": "5Gi"}},
        },
        "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]},
    }
    assert cells("", "persistentvolumeclaims", pvc, now=NOW) == [
        "data",
        "Bound",
        "pv-1",
        "10Gi",
        "RWO",
        "standard",
        "<unset>",
        "5m",
        "<unset>",
    ]
    pending = {"metadata": meta("new"), "spec": {}, "status": {"phase": "Pending"}}
    assert cells("", "persistentvolumeclaims", pending, now=NOW)[1:5] == ["Pending", "", "", ""]


def test_access_control_and_cluster_kinds() -> None:
    rb = {
        "metadata": meta("rb"),
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "namespace": "ci", "name": "runner"},
            {"kind": "User", "name": "bob"},
        ],
    }
    assert cells("rbac.authorization.k8s.io", "rolebindings", rb, now=NOW) == [
        "rb",
        "ClusterRole/view",
        "5m",
        "alice, bob",
        "devs",
        "ci/runner",
    ]
    csr = {
        "metadata": meta("node-csr"),
        "spec": {
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "username": "system:bootstrap:abc",
            "expirationSeconds": 86400,
        },
        "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"},
    }
    assert cells("certificates.k8s.io", "certificatesigningrequests", csr, now=NOW) == [
        "node-csr",
        "5m",
        "kubernetes.io/kube-apiserver-client-kubelet",
        "system:bootstrap:abc",
        "24h",
        "Approved,Issued",
    ]
    hook = {"metadata": meta("hooks"), "webhooks": [{"name": "a.example.com"}, {"name": "b.example.com"}]}
    assert cells("admissionregistration.k8s.io", "validatingwebhookconfigurations", hook, now=NOW) == [
        "hooks",
        2,
        "5m",
    ]
    pc = {"metadata": meta("high"), "value": 1000, "globalDefault": True, "preemptionPolicy": "Never"}
    assert cells("scheduling.k8s.io", "priorityclasses", pc, now=NOW) == ["high", 1000, True, "5m", "Never"]
    sc = {
        "metadata": meta("standard", annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
        "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    assert cells("storage.k8s.io", "storageclasses", sc, now=NOW) == [
        "standard (default)",
        "rancher.io/local-path",
        "Delete",
        "WaitForFirstConsumer",
        False,
        "5m",
    ]
    pdb = {"metadata": meta("pdb"), "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}
    assert cells("policy", "poddisruptionbudgets", pdb, now=NOW) == ["pdb", "50%", "N/A", 1, "5m"]
    lease = {"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "cp-1_abc"}}
    assert cells("coordination.k8s.io", "leases", lease, now=NOW) == ["kube-scheduler", "cp-1_abc", "5m"]


def test_networking_kinds() -> None:
    ing = {
        "metadata": meta("web"),
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {"host": "a.example"},
                {"host": "b.example"},
                {},
                {"host": "c.example"},
                {"host": "d.example"},
            ],
            "tls": [{"hosts": ["a.example"]}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}},
    }
    assert cells("networking.k8s.io", "ingresses", ing, now=NOW) == [
        "web",
        "nginx",
        "a.example,b.example,c.example + 2 more...",
        "203.0.113.10",
        "80, 443",
        "5m",
    ]
    assert cells("networking.k8s.io", "ingresses", {"metadata": meta("i")}, now=NOW)[1:5] == [
        "<none>",
        "*",
        "",
        "80",
    ]
    ic = {
        "metadata": meta("nginx"),
        "spec": {
            "controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p"},
        },
    }
    assert cells("networking.k8s.io", "ingressclasses", ic, now=NOW) == [
        "nginx",
        "k8s.io/ingress-nginx",
        "Params.k8s.example.com/p",
        "5m",
    ]
    np = {"metadata": meta("deny"), "spec": {"podSelector": {}}}
    assert cells("networking.k8s.io", "networkpolicies", np, now=NOW) == ["deny", "<none>", "5m"]


def test_hpa_row() -> None:
    hpa = {
        "metadata": meta("web"),
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                },
                {
                    "type": "Resource",
                    "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}},
                },
                {"type": "Pods", "pods": {"target": {"averageValue": "100"}}},
            ],
        },
        "status": {
            "currentReplicas": 3,
            "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45}}}
            ],
        },
    }
    assert cells("autoscaling", "horizontalpodautoscalers", hpa, now=NOW) == [
        "web",
        "Deployment/web",
        "cpu: 45%/80%, memory: <unknown>/1Gi + 1 more...",
        "2",
        10,
        3,
        "5m",
    ]
    v1 = {
        "metadata": meta("old"),
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "x"},
            "maxReplicas": 4,
            "targetCPUUtilizationPercentage": 50,
        },
    }
    assert cells("autoscaling", "horizontalpodautoscalers", v1, now=NOW)[2:4] == [
        "cpu: <unknown>/50%",
        "<unset>",
    ]


# --- custom resources ---------------------------------------------------------------------------

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {
        "name": "Image",
        "type": "string",
        "jsonPath": ".spec.containers[*].image",
        "priority": 1,
        "description": "The image.",
    },
    {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio"},
    {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
    {"name": "Started", "type": "date", "jsonPath": ".status.startedAt"},
    {"name": "Spec", "type": "string", "jsonPath": ".spec.extra"},
]


def test_crd_columns_follow_additional_printer_columns() -> None:
    cols = columns("example.com", "widgets", printer_columns=PRINTER_COLUMNS)
    assert [(c["name"], c["type"], c["priority"]) for c in cols] == [
        ("Name", "string", 0),
        ("Replicas", "integer", 0),
        ("Ready", "string", 0),
        ("Image", "string", 1),
        ("Ratio", "number", 0),
        ("Paused", "boolean", 0),
        ("Started", "date", 0),
        ("Spec", "string", 0),
    ]
    assert cols[1]["description"] == "Custom resource definition column (in JSONPath format): .spec.replicas"
    assert cols[3]["description"] == "The image."


def test_crd_cells_are_typed_per_column() -> None:
    cr = {
        "metadata": meta("w1"),
        "spec": {
            "replicas": 3.0,
            "paused": False,
            "containers": [{"image": "a:1"}, {"image": "b:2"}],
            "extra": {"b": 1, "a": [True]},
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "ratio": 2,
            "startedAt": ts(timedelta(hours=5)),
        },
    }
    assert cells("example.com", "widgets", cr, now=NOW, printer_columns=PRINTER_COLUMNS) == [
        "w1",
        3,
        "True",
        "a:1",
        2.0,
        False,
        "5h",
        '{"a":[true],"b":1}',
    ]
    empty = {"metadata": meta("w2"), "spec": {"replicas": "three"}, "status": {"startedAt": "yesterday"}}
    assert cells("example.com", "widgets", empty, now=NOW, printer_columns=PRINTER_COLUMNS) == [
        "w2",
        None,
        None,
        None,
        None,
        None,
        "<invalid>",
        None,
    ]


def test_crd_without_printer_columns_is_served_an_age_column() -> None:
    cols = columns("example.com", "widgets", printer_columns=[])
    assert [(c["name"], c["type"]) for c in cols] == [("Name", "string"), ("Age", "date")]
    assert cells(
        "example.com", "widgets", {"metadata": meta("w", timedelta(days=400))}, now=NOW, printer_columns=[]
    ) == ["w", "400d"]
    # As upstream, a missing field gives an empty (null) cell; a null or zero time gives <unknown>.
    assert cells("example.com", "widgets", {"metadata": {"name": "w"}}, now=NOW, printer_columns=[]) == [
        "w",
        None,
    ]
    zero = {"metadata": {"name": "w", "creationTimestamp": "0001-01-01T00:00:00Z"}}
    assert cells("example.com", "widgets", zero, now=NOW, printer_columns=[]) == ["w", "<unknown>"]


def test_crd_columns_stop_at_an_unparsable_path() -> None:
    bad = [
        {"name": "A", "type": "string", "jsonPath": ".a"},
        {"name": "B", "type": "string", "jsonPath": ".b["},
    ]
    assert [c["name"] for c in columns("x.io", "things", printer_columns=bad)] == ["Name", "A"]
    assert cells("x.io", "things", {"metadata": {"name": "t"}, "a": 1}, now=NOW, printer_columns=bad) == [
        "t",
        "1",
    ]


def test_naive_now_is_treated_as_utc() -> None:
    cm = {"metadata": meta("c", timedelta(minutes=3, seconds=20))}
    assert cells("", "configmaps", cm, now=NOW.replace(tzinfo=None))[2] == "3m20s"
