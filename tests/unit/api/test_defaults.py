"""Per-kind defaulting matches upstream's read-back values and is idempotent."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api.defaults import apply_create_defaults, apply_defaults
from controlplane.api.resources import ResourceInfo, default_registry

REGISTRY = default_registry()


def info(group: str, plural: str) -> ResourceInfo:
    version = "v1"
    found = REGISTRY.get(group, version, plural)
    assert found is not None
    return found


def _pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec},
    }


def test_pod_defaults() -> None:
    pod = _pod()
    apply_defaults(info("", "pods"), pod)
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    # Priority, service account and default tolerations are admission's (apiserver.admission).
    assert not {"priority", "preemptionPolicy", "serviceAccountName", "tolerations"} & set(spec)
    ctr = spec["containers"][0]
    assert ctr["imagePullPolicy"] == "Always"
    assert ctr["terminationMessagePath"] == "/dev/termination-log"
    assert ctr["terminationMessagePolicy"] == "File"
    assert ctr["resources"] == {}


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("registry:5000/team/app", "Always"),
        ("registry:5000/team/app:v2", "IfNotPresent"),
        ("nginx@sha256:abcd", "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    pod = {"metadata": {}, "spec": {"containers": [{"name": "c", "image": image}]}}
    apply_defaults(info("", "pods"), pod)
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_tolerations_are_kept_and_limits_become_requests() -> None:
    pod = _pod(tolerations=[{"operator": "Exists"}])
    pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    apply_defaults(info("", "pods"), pod)
    assert pod["spec"]["tolerations"] == [{"operator": "Exists"}]
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1"}


def test_service_defaults() -> None:
    svc = {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    apply_defaults(info("", "services"), svc)
    spec = svc["spec"]
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["sessionAffinity"] == "None"
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["ipFamilies"] == ["IPv4"]
    plain = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": "http"}]}}
    apply_defaults(info("", "services"), plain)
    assert plain["spec"]["type"] == "ClusterIP"
    assert plain["spec"]["ports"][0]["targetPort"] == "http"
    assert "externalTrafficPolicy" not in plain["spec"]


def test_workload_defaults() -> None:
    template = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}
    deploy = {"metadata": {"name": "d"}, "spec": {"template": copy.deepcopy(template)}}
    apply_defaults(info("apps", "deployments"), deploy)
    spec = deploy["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    tpl_spec = spec["template"]["spec"]
    assert tpl_spec["restartPolicy"] == "Always"
    # Admission-plugin defaults are for pods, not templates.
    assert "serviceAccountName" not in tpl_spec and "tolerations" not in tpl_spec

    ds = {"metadata": {"name": "x"}, "spec": {"template": copy.deepcopy(template)}}
    apply_defaults(info("apps", "daemonsets"), ds)
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }

    sts = {"metadata": {"name": "x"}, "spec": {"template": copy.deepcopy(template)}}
    apply_defaults(info("apps", "statefulsets"), sts)
    assert sts["spec"]["podManagementPolicy"] == "OrderedReady"
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }

    rc = {"metadata": {"name": "x"}, "spec": {"template": copy.deepcopy(template)}}
    apply_defaults(info("", "replicationcontrollers"), rc)
    assert rc["spec"]["selector"] == {"app": "a"}
    assert rc["metadata"]["labels"] == {"app": "a"}
    assert rc["spec"]["replicas"] == 1


def test_job_defaults_and_generated_selector() -> None:
    job = {
        "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "c", "image": "perl"}], "restartPolicy": "Never"}}
        },
    }
    apply_defaults(info("batch", "jobs"), job)
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert "manualSelector" not in spec
    apply_create_defaults(info("batch", "jobs"), job)
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    expected = {
        "batch.kubernetes.io/controller-uid": "u-1",
        "controller-uid": "u-1",
        "batch.kubernetes.io/job-name": "pi",
        "job-name": "pi",
    }
    assert spec["template"]["metadata"]["labels"] == expected
    assert job["metadata"]["labels"] == expected


def test_job_with_only_parallelism_keeps_completions_unset() -> None:
    job = {"metadata": {"name": "j"}, "spec": {"parallelism": 3, "template": {"spec": {}}}}
    apply_defaults(info("batch", "jobs"), job)
    assert "completions" not in job["spec"]


def test_manual_selector_is_left_alone() -> None:
    job = {"metadata": {"name": "j", "uid": "u"}, "spec": {"manualSelector": True, "template": {}}}
    apply_create_defaults(info("batch", "jobs"), job)
    assert "selector" not in job["spec"]


def test_cronjob_namespace_secret_pvc_defaults() -> None:
    cj = {
        "metadata": {"name": "c"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {}}}}},
    }
    apply_defaults(info("batch", "cronjobs"), cj)
    assert cj["spec"]["concurrencyPolicy"] == "Allow"
    assert cj["spec"]["suspend"] is False
    assert (cj["spec"]["successfulJobsHistoryLimit"], cj["spec"]["failedJobsHistoryLimit"]) == (3, 1)
    assert "backoffLimit" not in cj["spec"]["jobTemplate"]["spec"]

    ns = {"metadata": {"name": "team"}}
    apply_defaults(info("", "namespaces"), ns)
    apply_create_defaults(info("", "namespaces"), ns)
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    assert ns["status"]["phase"] == "Active"
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}

    secret = {"metadata": {"name": "s"}, "stringData": {"k": "v"}}
    apply_defaults(info("", "secrets"), secret)
    assert secret == {"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "dg=="}}

    pvc = {"metadata": {"name": "c"}, "spec": {}}
    apply_defaults(info("", "persistentvolumeclaims"), pvc)
    assert pvc["spec"]["volumeMode"] == "Filesystem"


# --- idempotence ------------------------------------------------------------------------------

_containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["a", "b"]), "image": st.sampled_from(["nginx", "nginx:1", "x@sha256:1"])},
        optional={
            "ports": st.lists(st.fixed_dictionaries({"containerPort": st.integers(1, 9)}), max_size=2),
            "imagePullPolicy": st.sampled_from(["Never", "Always"]),
            "resources": st.just({"limits": {"cpu": "1"}}),
            "livenessProbe": st.just({"httpGet": {"port": 80}}),
        },
    ),
    min_size=1,
    max_size=2,
)
_pod_specs = st.fixed_dictionaries(
    {"containers": _containers},
    optional={
        "restartPolicy": st.sampled_from(["Never", "OnFailure"]),
        "hostNetwork": st.booleans(),
        "tolerations": st.just([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]),
        "priorityClassName": st.sampled_from(["system-node-critical", "custom"]),
        "volumes": st.just([{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]),
    },
)
_templates = st.fixed_dictionaries(
    {"spec": _pod_specs}, optional={"metadata": st.just({"labels": {"app": "a"}})}
)
_objects = st.one_of(
    st.tuples(st.just(("", "pods")), st.builds(lambda s: {"metadata": {"name": "p"}, "spec": s}, _pod_specs)),
    *[
        st.tuples(
            st.just(key),
            st.builds(lambda t: {"metadata": {"name": "w", "uid": "u"}, "spec": {"template": t}}, _templates),
        )
        for key in [
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "daemonsets"),
            ("apps", "statefulsets"),
            ("", "replicationcontrollers"),
            ("batch", "jobs"),
        ]
    ],
    st.tuples(
        st.just(("", "services")),
        st.builds(
            lambda t, p: {"metadata": {"name": "s"}, "spec": {"type": t, "ports": p}},
            st.sampled_from(["", "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]),
            st.lists(
                st.fixed_dictionaries({"port": st.integers(1, 9)}, optional={"targetPort": st.just("web")}),
                max_size=2,
            ),
        ),
    ),
    st.tuples(st.just(("", "namespaces")), st.just({"metadata": {"name": "n"}})),
    st.tuples(st.just(("", "secrets")), st.just({"metadata": {"name": "s"}, "stringData": {"a": "b"}})),
)


@settings(deadline=None, max_examples=150)
@given(_objects)
def test_defaulting_is_idempotent(case: tuple[tuple[str, str], dict[str, Any]]) -> None:
    (group, plural), obj = case
    resource = info(group, plural)
    once = copy.deepcopy(obj)
    apply_defaults(resource, once)
    apply_create_defaults(resource, once)
    twice = copy.deepcopy(once)
    apply_defaults(resource, twice)
    apply_create_defaults(resource, twice)
    assert twice == once
