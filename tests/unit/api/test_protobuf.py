"""Decoding of Kubernetes protobuf request bodies (controlplane.api.protobuf)."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from controlplane.api import schemas
from controlplane.api.errors import BadRequest
from controlplane.api.protobuf import decode_object
from controlplane.api.protobuf.decode import (
    MAGIC,
    UNKNOWN_FORMAT_MESSAGE,
    go_duration,
    message_class,
    message_for,
)

REPO = Path(__file__).resolve().parents[3]
KUBECTL_133 = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")

# Bodies captured from kubectl v1.33.1 with -v=9 (`Request Body`).
CAPTURED = {
    # kubectl create ns tx
    "ns_tx": "6b3873000a0f0a02763112094e616d65737061636512"
    "1a0a120a02747812001a0022002a0032003800420012001a020a001a002200",
    # kubectl create namespace pbcap-ns
    "ns": "6b3873000a0f0a02763112094e616d65737061636512200a180a0870626361702d6e7312001a0022002a00"
    "32003800420012001a020a001a002200",
    # kubectl create configmap pbcap-cm -n default --from-literal=a=1 --from-literal=b=two
    "configmap": "6b3873000a0f0a0276311209436f6e6669674d617012330a1f0a0870626361702d636d12001a0764656661"
    "756c7422002a0032003800420012060a016112013112080a0162120374776f1a002200",
    # kubectl create deployment pbcap-dep -n default --image=nginx --replicas=0
    "deployment": "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412cb010a320a0970626361702d646570"
    "12001a0764656661756c7422002a003200380042005a100a03617070120970626361702d64657012860108"
    "0012120a100a03617070120970626361702d6465701a660a220a0012001a0022002a003200380042005a10"
    "0a03617070120970626361702d646570124012220a056e67696e7812056e67696e782a0042006a00720080"
    "0100880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00"
    "280038001a0c0800100018002000280038001a002200",
    # kubectl create secret generic pbcap-sec -n default --from-literal=k=v
    "secret": "6b3873000a0c0a0276311206536563726574122c0a200a0970626361702d73656312001a0764656661756c"
    "7422002a0032003800420012060a016b1201761a001a002200",
}


def envelope(api_version: str, kind: str, obj: Any) -> bytes:
    unknown = message_class("k8s.io.apimachinery.pkg.runtime.Unknown")()
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    unknown.raw = obj.SerializeToString()
    unknown.contentEncoding = ""
    unknown.contentType = ""
    return MAGIC + bytes(unknown.SerializeToString())


def msg(name: str) -> Any:
    return message_class(name)()


CORE = "k8s.io.api.core.v1"
META = "k8s.io.apimachinery.pkg.apis.meta.v1"


def gogo_metadata(meta: Any, name: str, namespace: str = "") -> None:
    """Fill ObjectMeta the way gogo does: every non-pointer field written, zero or not."""
    meta.name = name
    meta.generateName = ""
    meta.namespace = namespace
    meta.selfLink = ""
    meta.uid = ""
    meta.resourceVersion = ""
    meta.generation = 0
    meta.creationTimestamp.SetInParent()


# --- captured kubectl bodies -------------------------------------------------------------------


def test_captured_namespace_from_the_brief() -> None:
    assert decode_object(bytes.fromhex(CAPTURED["ns_tx"])) == {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": "tx"},
    }


def test_captured_namespace() -> None:
    assert decode_object(bytes.fromhex(CAPTURED["ns"])) == {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": "pbcap-ns"},
    }


def test_captured_configmap_has_sorted_data_and_no_empty_strings() -> None:
    obj = decode_object(bytes.fromhex(CAPTURED["configmap"]))
    assert obj == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "pbcap-cm", "namespace": "default"},
        "data": {"a": "1", "b": "two"},
    }
    assert list(obj["data"]) == ["a", "b"]


def test_captured_deployment_keeps_pointer_zero_replicas() -> None:
    assert decode_object(bytes.fromhex(CAPTURED["deployment"])) == {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "pbcap-dep", "namespace": "default", "labels": {"app": "pbcap-dep"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "pbcap-dep"}},
            "template": {
                "metadata": {"labels": {"app": "pbcap-dep"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx"}]},
            },
        },
    }


def test_captured_secret_data_is_base64_and_empty_type_dropped() -> None:
    assert decode_object(bytes.fromhex(CAPTURED["secret"])) == {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "pbcap-sec", "namespace": "default"},
        "data": {"k": "dg=="},
    }


# --- bodies built from the descriptor set -------------------------------------------------------


def test_configmap_with_data_and_binary_data() -> None:
    cm = msg(f"{CORE}.ConfigMap")
    gogo_metadata(cm.metadata, "cfg", "ns1")
    cm.metadata.labels["tier"] = "web"
    cm.data["z"] = "last"
    cm.data["a"] = ""  # an empty map value is still a key: kept
    cm.binaryData["blob"] = b"\x00\x01\xff"
    assert decode_object(envelope("v1", "ConfigMap", cm)) == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "cfg", "namespace": "ns1", "labels": {"tier": "web"}},
        "data": {"a": "", "z": "last"},
        "binaryData": {"blob": "AAH/"},
    }


def test_secret_binary_data_and_pointer_false_immutable() -> None:
    secret = msg(f"{CORE}.Secret")
    gogo_metadata(secret.metadata, "s")
    secret.data["tls.key"] = bytes(range(250, 256))
    secret.stringData["plain"] = "text"
    secret.type = "Opaque"
    secret.immutable = False  # *bool: an explicit false is meaningful
    assert decode_object(envelope("v1", "Secret", secret)) == {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "s"},
        "data": {"tls.key": "+vv8/f7/"},
        "stringData": {"plain": "text"},
        "type": "Opaque",
        "immutable": False,
    }


def test_deployment_pod_template_with_pointers_quantities_and_inlined_structs() -> None:
    dep = msg("k8s.io.api.apps.v1.Deployment")
    gogo_metadata(dep.metadata, "web", "default")
    dep.metadata.creationTimestamp.seconds = 1_700_000_000
    dep.metadata.creationTimestamp.nanos = 0
    spec = dep.spec
    spec.replicas = 0
    spec.minReadySeconds = 0  # non-pointer zero: dropped
    spec.paused = False  # non-pointer false: dropped
    spec.selector.matchLabels["app"] = "web"
    spec.strategy.type = "RollingUpdate"
    spec.strategy.rollingUpdate.maxUnavailable.type = 0
    spec.strategy.rollingUpdate.maxUnavailable.intVal = 0
    spec.strategy.rollingUpdate.maxUnavailable.strVal = ""
    spec.strategy.rollingUpdate.maxSurge.type = 1
    spec.strategy.rollingUpdate.maxSurge.intVal = 0
    spec.strategy.rollingUpdate.maxSurge.strVal = "25%"
    tmpl = spec.template
    gogo_metadata(tmpl.metadata, "")
    tmpl.metadata.labels["app"] = "web"
    pod = tmpl.spec
    pod.terminationGracePeriodSeconds = 0
    pod.automountServiceAccountToken = False
    pod.hostNetwork = False
    pod.restartPolicy = ""
    pod.dnsPolicy = ""
    vol = pod.volumes.add()
    vol.name = "scratch"
    vol.volumeSource.emptyDir.SetInParent()  # *EmptyDirVolumeSource{}: `emptyDir: {}`
    c = pod.containers.add()
    c.name = "app"
    c.image = "nginx:1.27"
    c.imagePullPolicy = ""
    c.stdin = False
    port = c.ports.add()
    port.name = "http"
    port.containerPort = 8080
    port.protocol = "TCP"
    port.hostPort = 0
    port.hostIP = ""
    c.resources.limits["cpu"].string = "500m"
    c.resources.limits["memory"].string = "128Mi"
    c.resources.requests["cpu"].string = "250m"
    env = c.env.add()
    env.name = "MODE"
    env.value = ""
    env.valueFrom.configMapKeyRef.localObjectReference.name = "cfg"
    env.valueFrom.configMapKeyRef.key = "mode"
    mount = c.volumeMounts.add()
    mount.name = "scratch"
    mount.mountPath = "/scratch"
    mount.readOnly = False
    c.readinessProbe.handler.httpGet.path = "/healthz"
    c.readinessProbe.handler.httpGet.port.type = 1
    c.readinessProbe.handler.httpGet.port.strVal = "http"
    c.readinessProbe.periodSeconds = 5
    assert decode_object(envelope("apps/v1", "Deployment", dep)) == {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2023-11-14T22:13:20Z"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "automountServiceAccountToken": False,
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.27",
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": "250m"},
                            },
                            "env": [
                                {
                                    "name": "MODE",
                                    "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}},
                                }
                            ],
                            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 5,
                            },
                        }
                    ],
                },
            },
        },
    }


def test_service_target_ports_int_and_string_and_zero_dropped() -> None:
    svc = msg(f"{CORE}.Service")
    gogo_metadata(svc.metadata, "web", "default")
    svc.spec.type = "ClusterIP"
    svc.spec.selector["app"] = "web"
    for name, port, target in (("http", 80, 8080), ("named", 81, "web"), ("plain", 82, None)):
        p = svc.spec.ports.add()
        p.name = name
        p.protocol = "TCP"
        p.port = port
        p.nodePort = 0
        if isinstance(target, int):
            p.targetPort.type = 0
            p.targetPort.intVal = target
        elif isinstance(target, str):
            p.targetPort.type = 1
            p.targetPort.strVal = target
        else:  # the zero IntOrString gogo writes for an unset non-pointer field
            p.targetPort.type = 0
            p.targetPort.intVal = 0
            p.targetPort.strVal = ""
    assert decode_object(envelope("v1", "Service", svc))["spec"] == {
        "type": "ClusterIP",
        "selector": {"app": "web"},
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
            {"name": "named", "protocol": "TCP", "port": 81, "targetPort": "web"},
            {"name": "plain", "protocol": "TCP", "port": 82},
        ],
    }


def test_eviction_with_delete_options() -> None:
    ev = msg("k8s.io.api.policy.v1.Eviction")
    gogo_metadata(ev.metadata, "web-0", "default")
    ev.deleteOptions.gracePeriodSeconds = 0
    ev.deleteOptions.preconditions.uid = "1234"
    ev.deleteOptions.propagationPolicy = "Background"
    ev.deleteOptions.dryRun.append("All")
    assert decode_object(envelope("policy/v1", "Eviction", ev)) == {
        "kind": "Eviction",
        "apiVersion": "policy/v1",
        "metadata": {"name": "web-0", "namespace": "default"},
        "deleteOptions": {
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "1234"},
            "propagationPolicy": "Background",
            "dryRun": ["All"],
        },
    }


@pytest.mark.parametrize("api_version", ["v1", "apps/v1", "policy/v1", "batch/v1", "meta.k8s.io/v1"])
def test_delete_options_decode_in_every_group_version(api_version: str) -> None:
    opts = msg(f"{META}.DeleteOptions")
    opts.propagationPolicy = "Foreground"
    opts.orphanDependents = False  # *bool
    assert decode_object(envelope(api_version, "DeleteOptions", opts)) == {
        "kind": "DeleteOptions",
        "apiVersion": api_version,
        "propagationPolicy": "Foreground",
        "orphanDependents": False,
    }


def test_lease_micro_time_and_certificate_request_bytes() -> None:
    lease = msg("k8s.io.api.coordination.v1.Lease")
    gogo_metadata(lease.metadata, "node-1", "kube-node-lease")
    lease.spec.holderIdentity = "node-1"
    lease.spec.leaseDurationSeconds = 40
    lease.spec.renewTime.seconds = 1_700_000_000
    lease.spec.renewTime.nanos = 123_456_789
    assert decode_object(envelope("coordination.k8s.io/v1", "Lease", lease))["spec"] == {
        "holderIdentity": "node-1",
        "leaseDurationSeconds": 40,
        "renewTime": "2023-11-14T22:13:20.123456Z",
    }
    csr = msg("k8s.io.api.certificates.v1.CertificateSigningRequest")
    gogo_metadata(csr.metadata, "csr-1")
    csr.spec.request = b"-----BEGIN CERTIFICATE REQUEST-----\n"
    csr.spec.signerName = "kubernetes.io/kube-apiserver-client"
    csr.spec.usages.append("client auth")
    cond = csr.status.conditions.add()
    cond.type = "Approved"
    cond.status = "True"
    cond.reason = "KubectlApprove"
    cond.lastUpdateTime.seconds = 0  # the epoch is a real time: not null
    cond.lastTransitionTime.SetInParent()  # zero time: null, dropped
    out = decode_object(envelope("certificates.k8s.io/v1", "CertificateSigningRequest", csr))
    assert out["spec"] == {
        "request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
        "signerName": "kubernetes.io/kube-apiserver-client",
        "usages": ["client auth"],
    }
    assert out["status"] == {
        "conditions": [
            {
                "type": "Approved",
                "status": "True",
                "reason": "KubectlApprove",
                "lastUpdateTime": "1970-01-01T00:00:00Z",
            }
        ]
    }


def test_raw_extension_and_managed_fields_are_json() -> None:
    rev = msg("k8s.io.api.apps.v1.ControllerRevision")
    gogo_metadata(rev.metadata, "web-abc", "default")
    entry = rev.metadata.managedFields.add()
    entry.manager = "kubectl"
    entry.operation = "Update"
    entry.fieldsType = "FieldsV1"
    entry.fieldsV1.Raw = b'{"f:data":{}}'
    rev.data.raw = b'{"spec":{"template":{}}}'
    rev.revision = 3
    assert decode_object(envelope("apps/v1", "ControllerRevision", rev)) == {
        "kind": "ControllerRevision",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": "web-abc",
            "namespace": "default",
            "managedFields": [
                {
                    "manager": "kubectl",
                    "operation": "Update",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {}},
                }
            ],
        },
        "data": {"spec": {"template": {}}},
        "revision": 3,
    }


def test_historical_field_spellings_use_the_json_name() -> None:
    ref = msg("k8s.io.api.networking.v1.IngressClass")
    gogo_metadata(ref.metadata, "nginx")
    ref.spec.controller = "example.com/ingress"
    ref.spec.parameters.aPIGroup = "example.com"  # proto name aPIGroup, JSON apiGroup
    ref.spec.parameters.kind = "Params"
    ref.spec.parameters.name = "p"
    out = decode_object(envelope("networking.k8s.io/v1", "IngressClass", ref))
    assert out["spec"] == {
        "controller": "example.com/ingress",
        "parameters": {"apiGroup": "example.com", "kind": "Params", "name": "p"},
    }


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (300_000_000, "300ms"),
        (1_500_000_000, "1.5s"),
        (90 * 10**9, "1m30s"),
        (3600 * 10**9, "1h0m0s"),
        (-(3723 * 10**9 + 5 * 10**8), "-1h2m3.5s"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


# --- type lookup ------------------------------------------------------------------------------


def test_every_upstream_api_kind_has_its_message() -> None:
    """The package -> group table agrees with the OpenAPI GVKs for every k8s.io/api kind."""
    checked = 0
    for (group, version, kind), name in schemas.gvk_index().items():
        if not name.startswith("io.k8s.api.") or kind.endswith("Options") or kind == "WatchEvent":
            continue
        desc = message_for(group, version, kind)
        assert desc is not None, (group, version, kind)
        assert desc.full_name == "k8s.io." + name.removeprefix("io.k8s."), (group, version, kind)
        checked += 1
    assert checked > 100


def test_unknown_types_are_rejected() -> None:
    assert message_for("example.com", "v1", "Widget") is None
    assert message_for("apps", "v1", "Nope") is None
    with pytest.raises(BadRequest) as exc:
        decode_object(envelope("example.com/v1", "Widget", msg(f"{CORE}.ConfigMap")))
    assert exc.value.message == UNKNOWN_FORMAT_MESSAGE
    assert exc.value.code == 400


# --- errors -----------------------------------------------------------------------------------


def _message(body: bytes, **kwargs: str) -> str:
    with pytest.raises(BadRequest) as exc:
        decode_object(body, **kwargs)
    return exc.value.message


def test_bad_magic_and_empty_bodies() -> None:
    assert _message(b'{"kind":"Namespace"}') == (
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )
    assert _message(b"") == "empty data"
    assert _message(MAGIC) == "empty body"
    assert _message(b"\x00\x01", default_kind="Namespace").endswith("expected prefix [107 56 115 0] (0001)")
    assert _message(b"{}", default_api_version="v1", default_kind="Namespace") == (
        "the object provided is unrecognized (must be of type Namespace): provided data does not appear "
        "to be a protobuf message, expected prefix [107 56 115 0] ({})"
    )


def test_truncated_bodies_say_unexpected_eof() -> None:
    body = bytes.fromhex(CAPTURED["deployment"])
    assert _message(body[:20]) == "unexpected EOF"
    # Envelope intact, object cut short: the raw length no longer fits either.
    assert _message(body[:-3]) == "unexpected EOF"
    full = bytes.fromhex(CAPTURED["ns"])
    ns = msg(f"{CORE}.Namespace")
    gogo_metadata(ns.metadata, "x")
    truncated_raw = ns.SerializeToString()[:-1]
    unknown = message_class("k8s.io.apimachinery.pkg.runtime.Unknown")()
    unknown.typeMeta.apiVersion = "v1"
    unknown.typeMeta.kind = "Namespace"
    unknown.raw = truncated_raw
    body = MAGIC + unknown.SerializeToString()
    assert full != body
    assert _message(body, default_api_version="v1", default_kind="Namespace") == (
        'Namespace in version "v1" cannot be handled as a Namespace: unexpected EOF'
    )


def test_wrong_wire_type_names_the_go_field() -> None:
    # Namespace.metadata (field 1) sent as a varint.
    unknown = message_class("k8s.io.apimachinery.pkg.runtime.Unknown")()
    unknown.typeMeta.apiVersion = "v1"
    unknown.typeMeta.kind = "Namespace"
    unknown.raw = b"\x08\x01"
    assert _message(MAGIC + unknown.SerializeToString()) == "proto: wrong wireType = 0 for field ObjectMeta"
    unknown.raw = b"\x00\x01"
    assert _message(MAGIC + unknown.SerializeToString()) == "proto: Namespace: illegal tag 0 (wire type 0)"
    unknown.raw = b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
    assert _message(MAGIC + unknown.SerializeToString()) == "proto: negative length found during unmarshaling"


def test_unknown_fields_are_skipped() -> None:
    ns = msg(f"{CORE}.Namespace")
    gogo_metadata(ns.metadata, "x")
    raw = ns.SerializeToString() + b"\xf8\x07\x05" + b"\xfa\x07\x02hi"  # fields 127 (varint, bytes)
    unknown = message_class("k8s.io.apimachinery.pkg.runtime.Unknown")()
    unknown.typeMeta.apiVersion = "v1"
    unknown.typeMeta.kind = "Namespace"
    unknown.raw = raw
    assert decode_object(MAGIC + unknown.SerializeToString()) == {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": "x"},
    }


def test_missing_kind_and_defaults_from_the_endpoint() -> None:
    ns = msg(f"{CORE}.Namespace")
    gogo_metadata(ns.metadata, "x")
    body = envelope("", "", ns)
    assert _message(body) == "Object 'Kind' is missing in 'runtime.TypeMeta{APIVersion:\"\", Kind:\"\"}'"
    assert _message(envelope("", "Namespace", ns)) == (
        "Object 'apiVersion' is missing in 'runtime.TypeMeta{APIVersion:\"\", Kind:\"Namespace\"}'"
    )
    assert decode_object(body, default_api_version="v1", default_kind="Namespace") == {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": "x"},
    }


# --- the descriptor set and the tool that makes it ---------------------------------------------


def _load_extractor() -> Any:
    path = REPO / "scripts" / "extract_proto_descriptors.py"
    spec = importlib.util.spec_from_file_location("extract_proto_descriptors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("extract_proto_descriptors", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not KUBECTL_133.exists(), reason="kubectl 1.33 not installed")
def test_committed_descriptor_set_is_what_the_tool_extracts(tmp_path: Path) -> None:
    tool = _load_extractor()
    out = tmp_path / "d.binpb.gz"
    assert tool.main([str(KUBECTL_133), str(out)]) == 0
    committed = REPO / "controlplane" / "api" / "protobuf" / "descriptors.binpb.gz"
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(committed.read_bytes())


def test_invalid_utf8_strings_become_replacement_characters() -> None:
    cm = msg(f"{CORE}.ConfigMap")
    gogo_metadata(cm.metadata, "x")
    raw = cm.SerializeToString() + b"\x12\x08\x0a\x01k\x12\x03a\xffb"  # data {"k": "a\xffb"}
    unknown = message_class("k8s.io.apimachinery.pkg.runtime.Unknown")()
    unknown.typeMeta.apiVersion = "v1"
    unknown.typeMeta.kind = "ConfigMap"
    unknown.raw = raw
    out = decode_object(MAGIC + unknown.SerializeToString())
    assert out["data"] == {"k": "a\ufffdb"}
