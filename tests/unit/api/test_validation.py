"""Validation causes: upstream field paths, reasons and messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controlplane.api import errors, names
from controlplane.api.defaults import apply_create_defaults, apply_defaults
from controlplane.api.errors import Cause
from controlplane.api.resources import ResourceInfo, default_registry
from controlplane.api.validation import parse_cron_schedule, validate

REGISTRY = default_registry()


def info(group: str, plural: str) -> ResourceInfo:
    found = REGISTRY.get(group, "v1", plural)
    assert found is not None
    return found


def check(group: str, plural: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
    resource = info(group, plural)
    apply_defaults(resource, obj)
    if old is None:
        obj["metadata"].setdefault("uid", "uid-1")
        apply_create_defaults(resource, obj)
    return validate(resource, obj, old)


def fields(causes: list[Cause]) -> list[tuple[str, str]]:
    return [(c.field, c.reason) for c in causes]


def pod(name: str = "p", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec},
    }


def test_valid_pod_has_no_causes() -> None:
    assert check("", "pods", pod()) == []


def test_bad_name_message_matches_upstream() -> None:
    causes = check("", "pods", pod("Bad_Name"))
    assert causes == [
        Cause(
            reason="FieldValueInvalid",
            field="metadata.name",
            message=(
                'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        )
    ]
    err = errors.Invalid.for_object("Pod", "", "Bad_Name", causes)
    assert err.message.startswith('Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": ')


def test_object_meta_rules() -> None:
    obj = pod("")
    obj["metadata"].update(
        namespace="",
        labels={"bad key": "v", "ok": "-bad"},
        annotations={"a/b/c": "x"},
        finalizers=["x/y/z"],
        ownerReferences=[{"apiVersion": "v1", "kind": "", "name": "o", "uid": "u"}],
    )
    causes = check("", "pods", obj)
    assert ("metadata.name", "FieldValueRequired") in fields(causes)
    assert ("metadata.namespace", "FieldValueRequired") in fields(causes)
    assert ("metadata.labels", "FieldValueInvalid") in fields(causes)
    assert ("metadata.annotations", "FieldValueInvalid") in fields(causes)
    assert ("metadata.finalizers", "FieldValueInvalid") in fields(causes)
    assert ("metadata.ownerReferences.kind", "FieldValueInvalid") in fields(causes)
    name_cause = next(c for c in causes if c.field == "metadata.name")
    assert name_cause.message == "Required value: name or generateName is required"


def test_generate_name_is_checked_and_name_still_required() -> None:
    # Upstream generates the name before validating, so a bare generateName is still "Required".
    obj = pod("")
    obj["metadata"]["generateName"] = "Web-"
    causes = fields(check("", "pods", obj))
    assert causes == [("metadata.generateName", "FieldValueInvalid"), ("metadata.name", "FieldValueRequired")]
    generated = pod(names.generate_name("web-"))
    generated["metadata"]["generateName"] = "web-"
    assert check("", "pods", generated) == []


def test_annotation_size_limit() -> None:
    obj = pod()
    obj["metadata"]["annotations"] = {"big": "x" * (256 * 1024)}
    causes = check("", "pods", obj)
    assert causes == [
        Cause(
            reason="FieldValueTooLong",
            field="metadata.annotations",
            message="Too long: may not be more than 262144 bytes",
        )
    ]


def test_name_rules_per_kind() -> None:
    ns = {"metadata": {"name": "a.b"}}
    assert fields(check("", "namespaces", ns)) == [("metadata.name", "FieldValueInvalid")]
    svc = {"metadata": {"name": "1svc", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}}
    causes = check("", "services", svc)
    assert causes[0].message.startswith('Invalid value: "1svc": a DNS-1035 label must consist')
    role = {"metadata": {"name": "system:controller:x", "namespace": "d"}}
    assert check("rbac.authorization.k8s.io", "roles", role) == []
    cluster_role = {"metadata": {"name": "a/b"}}
    assert check("rbac.authorization.k8s.io", "clusterroles", cluster_role)[0].message == (
        "Invalid value: \"a/b\": may not contain '/'"
    )
    namespaced_on_cluster = {"metadata": {"name": "n", "namespace": "x"}}
    assert fields(check("rbac.authorization.k8s.io", "clusterroles", namespaced_on_cluster)) == [
        ("metadata.namespace", "FieldValueForbidden")
    ]


def test_metadata_update_rules() -> None:
    old = pod()
    old["metadata"].update(uid="u1", deletionTimestamp="2024-01-01T00:00:00Z", finalizers=["a.io/x"])
    new = copy.deepcopy(old)
    new["metadata"].update(uid="u2", finalizers=["a.io/x", "b.io/y"])
    causes = check("", "pods", new, old)
    assert Cause("FieldValueInvalid", 'Invalid value: "u2": field is immutable', "metadata.uid") in causes
    assert (
        Cause(
            "FieldValueForbidden",
            'Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"b.io/y"}',
            "metadata.finalizers",
        )
        in causes
    )


def test_pod_spec_rules() -> None:
    obj = pod(restartPolicy="Sometimes", dnsPolicy="Weird")
    obj["spec"]["containers"] = [
        {"name": "Bad", "image": "", "ports": [{"containerPort": 70000}]},
        {"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "ICMP"}]},
        {"name": "c", "image": "nginx"},
    ]
    causes = {c.field: c.message for c in check("", "pods", obj)}
    assert (
        causes["spec.restartPolicy"]
        == 'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'
    )
    assert causes["spec.dnsPolicy"].startswith('Unsupported value: "Weird": supported values: "ClusterFirst"')
    assert causes["spec.containers[0].name"].startswith('Invalid value: "Bad": a lowercase RFC 1123 label')
    assert causes["spec.containers[0].image"] == "Required value"
    assert (
        causes["spec.containers[0].ports[0].containerPort"]
        == "Invalid value: 70000: must be between 1 and 65535, inclusive"
    )
    assert (
        causes["spec.containers[1].ports[0].protocol"]
        == 'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'
    )
    assert causes["spec.containers[2].name"] == 'Duplicate value: "c"'
    no_containers = pod()
    no_containers["spec"]["containers"] = []
    assert fields(check("", "pods", no_containers)) == [("spec.containers", "FieldValueRequired")]


def test_pod_update_only_allows_image_changes() -> None:
    old = pod()
    check("", "pods", old)
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:2"
    assert validate(info("", "pods"), new, old) == []
    new["spec"]["restartPolicy"] = "Never"
    causes = validate(info("", "pods"), new, old)
    assert fields(causes) == [("spec", "FieldValueForbidden")]
    assert causes[0].message.startswith("Forbidden: pod updates may not change fields other than")


def test_service_rules() -> None:
    svc = {
        "metadata": {"name": "s", "namespace": "d"},
        "spec": {"type": "Weird", "clusterIP": "nope", "ports": [{"port": 0}, {"port": 80, "name": "web"}]},
    }
    causes = {c.field: c.message for c in check("", "services", svc)}
    assert causes["spec.type"].startswith('Unsupported value: "Weird": supported values: "ClusterIP"')
    assert causes["spec.ports[0].name"] == "Required value"
    assert causes["spec.ports[0].port"] == "Invalid value: 0: must be between 1 and 65535, inclusive"
    assert causes["spec.clusterIPs[0]"].startswith('Invalid value: "nope": must be a valid IP address')
    no_ports = {"metadata": {"name": "s", "namespace": "d"}, "spec": {}}
    assert fields(check("", "services", no_ports)) == [("spec.ports", "FieldValueRequired")]
    external = {
        "metadata": {"name": "s", "namespace": "d"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"},
    }
    assert check("", "services", external) == []
    headless = {"metadata": {"name": "s", "namespace": "d"}, "spec": {"clusterIP": "None"}}
    assert check("", "services", headless) == []
    duplicate = {
        "metadata": {"name": "s", "namespace": "d"},
        "spec": {"ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]},
    }
    assert fields(check("", "services", duplicate)) == [("spec.ports[1].name", "FieldValueDuplicate")]


def test_service_cluster_ip_is_immutable() -> None:
    old = {
        "metadata": {"name": "s", "namespace": "d"},
        "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]},
    }
    check("", "services", old)
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.0.0.2"
    assert fields(validate(info("", "services"), new, old)) == [("spec.clusterIPs[0]", "FieldValueInvalid")]


def deployment(selector: Any, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {
            "selector": selector,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }


def test_deployment_selector_rules() -> None:
    assert check("apps", "deployments", deployment({"matchLabels": {"app": "a"}}, {"app": "a"})) == []
    causes = check("apps", "deployments", deployment({"matchLabels": {"app": "a"}}, {"app": "b"}))
    assert causes == [
        Cause(
            "FieldValueInvalid",
            'Invalid value: {"app":"b"}: `selector` does not match template `labels`',
            "spec.template.metadata.labels",
        )
    ]
    causes = check("apps", "deployments", deployment({}, {"app": "b"}))
    assert causes == [
        Cause(
            "FieldValueInvalid",
            "Invalid value: {}: empty selector is invalid for deployment",
            "spec.selector",
        )
    ]
    missing = deployment(None, {"app": "a"})
    del missing["spec"]["selector"]
    assert fields(check("apps", "deployments", missing)) == [("spec.selector", "FieldValueRequired")]
    negative = deployment({"matchLabels": {"app": "a"}}, {"app": "a"})
    negative["spec"]["replicas"] = -1
    assert check("apps", "deployments", negative) == [
        Cause("FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0", "spec.replicas")
    ]


def test_workload_templates_do_not_need_images_but_need_restart_always() -> None:
    obj = deployment({"matchLabels": {"app": "a"}}, {"app": "a"})
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = ""
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    causes = check("apps", "deployments", obj)
    assert causes == [
        Cause(
            "FieldValueNotSupported",
            'Unsupported value: "Never": supported values: "Always"',
            "spec.template.spec.restartPolicy",
        )
    ]


def test_selector_is_immutable_in_apps_v1() -> None:
    old = deployment({"matchLabels": {"app": "a"}}, {"app": "a", "v": "1"})
    check("apps", "deployments", old)
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "a", "v": "1"}}
    assert fields(validate(info("apps", "deployments"), new, old)) == [("spec.selector", "FieldValueInvalid")]


def test_replication_controller_wording() -> None:
    rc = {
        "metadata": {"name": "rc", "namespace": "d"},
        "spec": {
            "selector": {"app": "x"},
            "template": {
                "metadata": {"labels": {"app": "y"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    causes = check("", "replicationcontrollers", rc)
    assert causes == [
        Cause(
            "FieldValueInvalid",
            'Invalid value: {"app":"y"}: selector does not match template labels',
            "spec.template.metadata.labels",
        )
    ]


def job(restart: str | None = "Never", **spec: Any) -> dict[str, Any]:
    template_spec: dict[str, Any] = {"containers": [{"name": "c", "image": "perl"}]}
    if restart:
        template_spec["restartPolicy"] = restart
    return {
        "metadata": {"name": "pi", "namespace": "default"},
        "spec": {"template": {"spec": template_spec}, **spec},
    }


def test_job_rules() -> None:
    assert check("batch", "jobs", job()) == []
    assert check("batch", "jobs", job(restart=None)) == [
        Cause(
            "FieldValueNotSupported",
            'Unsupported value: "Always": supported values: "OnFailure", "Never"',
            "spec.template.spec.restartPolicy",
        )
    ]
    assert fields(check("batch", "jobs", job(completions=-1))) == [("spec.completions", "FieldValueInvalid")]


def test_job_template_immutable_unless_suspended() -> None:
    old = job()
    check("batch", "jobs", old)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:2"
    assert fields(validate(info("batch", "jobs"), new, old)) == [("spec.template", "FieldValueInvalid")]
    old["spec"]["suspend"] = True
    assert validate(info("batch", "jobs"), new, old) == []


def test_cronjob_rules() -> None:
    def cron(schedule: str, name: str = "c") -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": "d"},
            "spec": {"schedule": schedule, "jobTemplate": job()["spec"] | {}},
        }

    def wrap(obj: dict[str, Any]) -> dict[str, Any]:
        obj["spec"]["jobTemplate"] = {"spec": obj["spec"]["jobTemplate"]}
        return obj

    assert check("batch", "cronjobs", wrap(cron("*/5 * * * *"))) == []
    assert check("batch", "cronjobs", wrap(cron("@hourly"))) == []
    causes = check("batch", "cronjobs", wrap(cron("not a cron")))
    assert causes == [
        Cause(
            "FieldValueInvalid",
            'Invalid value: "not a cron": expected exactly 5 fields, found 3: [not a cron]',
            "spec.schedule",
        )
    ]
    assert fields(check("batch", "cronjobs", wrap(cron("")))) == [("spec.schedule", "FieldValueRequired")]
    assert fields(check("batch", "cronjobs", wrap(cron("* * * * *", name="x" * 53)))) == [
        ("metadata.name", "FieldValueInvalid")
    ]


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("0 0 * * *", ""),
        ("0-59/15 1,2 1-31 jan-dec mon-fri", ""),
        ("@every 1h30m", ""),
        ("@weekly", ""),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ("60 * * * *", "end of range (60) above maximum (59): 60"),
        ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
        ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
    ],
)
def test_cron_parser(schedule: str, problem: str) -> None:
    assert parse_cron_schedule(schedule) == problem


def test_config_map_and_secret_rules() -> None:
    cm = {
        "metadata": {"name": "c", "namespace": "d"},
        "data": {"ok.key": "v", "bad key": "v"},
        "binaryData": {"ok.key": "AA=="},
    }
    causes = check("", "configmaps", cm)
    assert fields(causes) == [
        ("data[bad key]", "FieldValueInvalid"),
        ("binaryData[ok.key]", "FieldValueInvalid"),
    ]
    assert causes[1].message == 'Invalid value: "ok.key": duplicate of key present in data'

    tls = {
        "metadata": {"name": "s", "namespace": "d"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "AA=="},
    }
    assert fields(check("", "secrets", tls)) == [("data[tls.key]", "FieldValueRequired")]
    bad = {"metadata": {"name": "s", "namespace": "d"}, "data": {"k": "!!!!"}}
    with pytest.raises(errors.BadRequest) as exc:
        check("", "secrets", bad)
    assert (
        exc.value.message
        == 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 0'
    )


def test_immutable_config_maps_and_secret_type() -> None:
    old = {"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "1"}, "immutable": True}
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert validate(info("", "configmaps"), new, old) == [
        Cause("FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set", "data")
    ]
    old_secret = {"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque"}
    new_secret = copy.deepcopy(old_secret) | {"type": "example.com/custom"}
    assert fields(validate(info("", "secrets"), new_secret, old_secret)) == [("type", "FieldValueInvalid")]


def test_namespace_finalizers() -> None:
    ns = {"metadata": {"name": "team"}, "spec": {"finalizers": ["kubernetes", "custom"]}}
    causes = check("", "namespaces", ns)
    assert causes == [
        Cause(
            "FieldValueInvalid",
            'Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified',
            "spec.finalizers",
        )
    ]
