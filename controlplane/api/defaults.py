"""Per-kind defaulting: what upstream fills in before validation, on the wire (v1) shapes.

`apply_defaults` mirrors the `SetDefaults_*` functions of `pkg/apis/core/v1`, `apps/v1` and
`batch/v1` and the create-time strategy bits that need no identity (namespace finalizers). The
mutating admission plugins pods go through (ServiceAccount, Priority, DefaultTolerationSeconds)
live in `controlplane.apiserver.admission`: they read other objects and run on create only. `apply_create_defaults` holds what needs `metadata.uid` (the Job
selector), so it runs after the uid is assigned. Both only fill what is missing, so applying
them twice changes nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from controlplane.api.resources import ResourceInfo

__all__ = ["apply_create_defaults", "apply_defaults"]

Obj = dict[str, Any]

# batch/v1 label names written by the Job strategy.
JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
CONTROLLER_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def _sub(obj: Obj, key: str) -> Obj:
    """obj[key] as a dict, created when missing or null."""
    value = obj.get(key)
    if not isinstance(value, dict):
        value = {}
        obj[key] = value
    return value


def _items(obj: Obj, key: str) -> list[Obj]:
    value = obj.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# --- containers and pod specs ---------------------------------------------------------------------


def _image_pull_policy(image: str) -> str:
    """`SetDefaults_Container`: `Always` for `:latest` or an untagged image, else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        if not http.get("path"):
            http["path"] = "/"
        if not http.get("scheme"):
            http["scheme"] = "HTTP"
    grpc = probe.get("grpc")
    if isinstance(grpc, dict):
        grpc.setdefault("service", "")


def _default_container(ctr: Obj) -> None:
    if not ctr.get("imagePullPolicy") and isinstance(ctr.get("image"), str):
        ctr["imagePullPolicy"] = _image_pull_policy(ctr["image"])
    if not ctr.get("terminationMessagePath"):
        ctr["terminationMessagePath"] = "/dev/termination-log"
    if not ctr.get("terminationMessagePolicy"):
        ctr["terminationMessagePolicy"] = "File"
    if not isinstance(ctr.get("resources"), dict):
        ctr["resources"] = {}
    for port in _items(ctr, "ports"):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
    for env in _items(ctr, "env"):
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict) and not field_ref.get("apiVersion"):
            field_ref["apiVersion"] = "v1"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(ctr.get(probe))


_VOLUME_SOURCES = (
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
)


def _default_volume(vol: Obj) -> None:
    if not any(vol.get(src) is not None for src in _VOLUME_SOURCES):
        vol["emptyDir"] = {}
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        spec = vol.get(source)
        if isinstance(spec, dict) and spec.get("defaultMode") is None:
            spec["defaultMode"] = 420
    host_path = vol.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""


def _default_pod_spec(spec: Obj) -> None:
    """`SetDefaults_PodSpec` and the per-field defaults it triggers; also used for templates."""
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if not isinstance(spec.get("securityContext"), dict):
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for ctr in _items(spec, key):
            _default_container(ctr)
    for vol in _items(spec, "volumes"):
        _default_volume(vol)


def _default_pod_template(template: Any) -> None:
    if isinstance(template, dict):
        _default_pod_spec(_sub(template, "spec"))


def _default_pod(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    _default_pod_spec(spec)
    # SetDefaults_Pod: pod-only defaults that templates do not get.
    for key in ("initContainers", "containers"):
        for ctr in _items(spec, key):
            resources = ctr["resources"]
            limits = resources.get("limits")
            if isinstance(limits, dict) and limits:
                requests = _sub(resources, "requests")
                for name, quantity in limits.items():
                    requests.setdefault(name, quantity)
            if spec.get("hostNetwork"):
                for port in _items(ctr, "ports"):
                    if not port.get("hostPort") and port.get("containerPort"):
                        port["hostPort"] = port["containerPort"]
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True


# --- workloads --------------------------------------------------------------------------------


def _default_deployment(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _sub(spec, "strategy")
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = _sub(strategy, "rollingUpdate")
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = "25%"
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _default_pod_template(spec.get("template"))


def _default_replica_set(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _default_pod_template(spec.get("template"))


def _default_replication_controller(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    template = spec.get("template")
    labels = (template.get("metadata") or {}).get("labels") if isinstance(template, dict) else None
    if isinstance(labels, dict):
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = _sub(obj, "metadata")
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _default_pod_template(template)


def _default_daemon_set(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    strategy = _sub(spec, "updateStrategy")
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = _sub(strategy, "rollingUpdate")
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = 1
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _default_pod_template(spec.get("template"))


def _default_stateful_set(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if not spec.get("podManagementPolicy"):
        spec["podManagementPolicy"] = "OrderedReady"
    strategy = _sub(spec, "updateStrategy")
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        if not isinstance(strategy.get("rollingUpdate"), dict):
            strategy["rollingUpdate"] = {}
    rolling = strategy.get("rollingUpdate")
    if strategy["type"] == "RollingUpdate" and isinstance(rolling, dict) and rolling.get("partition") is None:
        rolling["partition"] = 0
    retention = _sub(spec, "persistentVolumeClaimRetentionPolicy")
    retention.setdefault("whenDeleted", "Retain")
    retention.setdefault("whenScaled", "Retain")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _default_pod_template(spec.get("template"))
    for claim in _items(spec, "volumeClaimTemplates"):
        _default_pvc(claim)


def _default_job_spec_template(spec: Obj) -> None:
    _default_pod_template(spec.get("template"))


def _default_job(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    template = spec.get("template")
    labels = (template.get("metadata") or {}).get("labels") if isinstance(template, dict) else None
    meta = _sub(obj, "metadata")
    if isinstance(labels, dict) and not meta.get("labels"):
        meta["labels"] = dict(labels)
    if not spec.get("completionMode"):
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    failure_policy = spec.get("podFailurePolicy")
    if isinstance(failure_policy, dict):
        for rule in _items(failure_policy, "rules"):
            for cond in _items(rule, "onPodConditions"):
                if not cond.get("status"):
                    cond["status"] = "True"
    if not spec.get("podReplacementPolicy"):
        spec["podReplacementPolicy"] = "Failed" if failure_policy is not None else "TerminatingOrFailed"
    _default_job_spec_template(spec)


def _default_cron_job(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict):
        _default_job_spec_template(_sub(job_template, "spec"))


def _default_pod_template_object(obj: Obj) -> None:
    _default_pod_template(obj.get("template"))


# --- core objects -----------------------------------------------------------------------------


def _default_service(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _sub(_sub(spec, "sessionAffinityConfig"), "clientIP")
        if client_ip.get("timeoutSeconds") is None:
            client_ip["timeoutSeconds"] = 10800
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    svc_type = spec["type"]
    for port in _items(spec, "ports"):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    externally_accessible = svc_type in ("LoadBalancer", "NodePort") or (
        svc_type == "ClusterIP" and bool(spec.get("externalIPs"))
    )
    if externally_accessible and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and svc_type in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec["internalTrafficPolicy"] = "Cluster"
    if svc_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    # The IP-family fields the service registry fills for a single-stack IPv4 cluster.
    if svc_type != "ExternalName":
        if not spec.get("ipFamilyPolicy"):
            spec["ipFamilyPolicy"] = "SingleStack"
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]


def _default_namespace(obj: Obj) -> None:
    meta = _sub(obj, "metadata")
    name = meta.get("name")
    # SetDefaults_Namespace: the immutable name label selectors can rely on.
    if isinstance(name, str) and name:
        _sub(meta, "labels")["kubernetes.io/metadata.name"] = name
    status = _sub(obj, "status")
    if not status.get("phase"):
        status["phase"] = "Active"


def _default_secret(obj: Obj) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"
    # Upstream's v1 -> internal conversion folds stringData into data (it wins) and drops it.
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = _sub(obj, "data")
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _default_pvc(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if not spec.get("volumeMode"):
        spec["volumeMode"] = "Filesystem"


def _default_pv(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if not spec.get("persistentVolumeReclaimPolicy"):
        spec["persistentVolumeReclaimPolicy"] = "Retain"
    if not spec.get("volumeMode"):
        spec["volumeMode"] = "Filesystem"


_DEFAULTERS: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("", "pods"): _default_pod,
    ("", "podtemplates"): _default_pod_template_object,
    ("", "services"): _default_service,
    ("", "namespaces"): _default_namespace,
    ("", "secrets"): _default_secret,
    ("", "persistentvolumeclaims"): _default_pvc,
    ("", "persistentvolumes"): _default_pv,
    ("", "replicationcontrollers"): _default_replication_controller,
    ("apps", "deployments"): _default_deployment,
    ("apps", "replicasets"): _default_replica_set,
    ("apps", "daemonsets"): _default_daemon_set,
    ("apps", "statefulsets"): _default_stateful_set,
    ("batch", "jobs"): _default_job,
    ("batch", "cronjobs"): _default_cron_job,
}


def apply_defaults(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Fill upstream's defaults into `obj` in place; custom resources get none here."""
    if info.custom:
        return
    defaulter = _DEFAULTERS.get((info.group, info.plural))
    if defaulter is not None:
        defaulter(obj)


def _job_create_defaults(obj: Obj) -> None:
    """The Job strategy's `generateSelector`, unless the user manages the selector."""
    spec = _sub(obj, "spec")
    if spec.get("manualSelector") is True:
        return
    meta = _sub(obj, "metadata")
    name, uid = str(meta.get("name") or ""), str(meta.get("uid") or "")
    template = _sub(spec, "template")
    template_meta = _sub(template, "metadata")
    template_labels = _sub(template_meta, "labels")
    # Upstream's defaulting aliases the Job's labels to the template's label map, so labels the
    # strategy adds to the template show up on the Job too; equality stands in for the alias.
    aliased = meta.get("labels") == template_labels
    for label in JOB_NAME_LABELS:
        template_labels.setdefault(label, name)
    for label in CONTROLLER_UID_LABELS:
        template_labels.setdefault(label, uid)
    selector = _sub(spec, "selector")
    _sub(selector, "matchLabels").setdefault(CONTROLLER_UID_LABELS[1], uid)
    if aliased or not meta.get("labels"):
        meta["labels"] = dict(template_labels)


def _namespace_create_defaults(obj: Obj) -> None:
    # Create-only: the finalizer may be removed later (by /finalize), so defaulting cannot own it.
    spec = _sub(obj, "spec")
    finalizers = spec.get("finalizers")
    if not isinstance(finalizers, list):
        finalizers = []
    if "kubernetes" not in finalizers:
        spec["finalizers"] = [*finalizers, "kubernetes"]


def _pod_create_defaults(obj: Obj) -> None:
    status = _sub(obj, "status")
    if not status.get("phase"):
        status["phase"] = "Pending"


_CREATE_DEFAULTERS: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("batch", "jobs"): _job_create_defaults,
    ("", "namespaces"): _namespace_create_defaults,
    ("", "pods"): _pod_create_defaults,
}


def apply_create_defaults(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Create-only defaults that need `metadata.uid`; call after the uid is assigned."""
    if info.custom:
        return
    defaulter = _CREATE_DEFAULTERS.get((info.group, info.plural))
    if defaulter is not None:
        defaulter(obj)
