"""BootstrapSpec and PackageSource: what they accept, normalise and refuse (with which message)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node_bootstrap.cloudinit.joinconfig import MachineRef
from node_bootstrap.cloudinit.read import read_user_data
from node_bootstrap.cloudinit.render import render
from node_bootstrap.cloudinit.spec import (
    KUBERNETES_KEY_FINGERPRINT,
    UNINITIALIZED_TAINT,
    PackageSource,
    ca_cert_hashes,
    parse_taint,
)

from .specs import CA_PEM, make_spec

CA_HASH = ca_cert_hashes(CA_PEM)[0]


def test_defaults() -> None:
    spec = make_spec()
    assert spec.ca_cert_hashes == (CA_HASH,)
    assert spec.provider_id_template == "aws:///{zone}/{instance_id}"
    assert spec.node_taints == (UNINITIALIZED_TAINT,)
    assert spec.pause_image == "registry.k8s.io/pause:3.10"
    assert spec.cluster_dns == "10.96.0.10"
    assert spec.minor == "1.33"
    assert not spec.patch_pinned
    assert spec.package_source.fingerprint() == KUBERNETES_KEY_FINGERPRINT
    assert make_spec(metadata="local").provider_id_template == "local:///{zone}/{instance_id}"


def test_normalises() -> None:
    spec = make_spec(
        kubernetes_version="v1.33.2",
        ca_cert_hashes=(CA_HASH.upper().replace("SHA256", "sha256"),),
        node_labels={"b": "2", "a": "1"},
    )
    assert spec.kubernetes_version == "1.33.2"
    assert spec.patch_pinned
    assert spec.ca_cert_hashes == (CA_HASH,)
    assert list(spec.node_labels) == ["a", "b"]
    # The uninitialized taint given explicitly is not added twice.
    assert make_spec(node_taints=(dict(UNINITIALIZED_TAINT),)).node_taints == (UNINITIALIZED_TAINT,)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"os": "centos-9"}, "os: 'centos-9' is not supported"),
        ({"kubernetes_version": "1.33.x"}, "kubernetes_version"),
        ({"kubernetes_version": "2.0"}, "kubernetes_version"),
        ({"kubernetes_version": "1.26"}, "older than 1.27"),
        ({"server": "http://10.0.0.1:6443"}, "server"),
        ({"server": "https://"}, "server"),
        ({"server": "https://a.example\n#x"}, "server"),
        ({"server": "https://a.example/$(reboot)"}, "server"),
        ({"machine": MachineRef("a" * 254)}, "machine"),
        ({"token": "abcdef0123456789abcdef"}, "pinnace token create"),
        ({"token": "ABCDEF.0123456789abcdef"}, "token"),
        ({"metadata": "azure"}, "metadata"),
        ({"ca_pem": b"not a cert"}, "ca_pem"),
        ({"ca_cert_hashes": ("sha256:abc",)}, 'invalid hash "sha256:abc"'),
        ({"ca_cert_hashes": ("sha256:" + "0" * 64,)}, "none of them is the hash of the CA"),
        ({"metadata": "gce"}, "gce://<project>"),
        ({"provider_id_template": "aws:///{zone}"}, "{instance_id}"),
        ({"provider_id_template": "aws:///{project}/{instance_id}"}, "only"),
        ({"cluster_cidr": "10.244.0.0/33"}, "cluster_cidr"),
        ({"cluster_dns": "10.96.0"}, "cluster_dns"),
        ({"cluster_domain": "Cluster_Local"}, "cluster_domain"),
        (
            {"node_labels": {"node-role.kubernetes.io/worker": ""}},
            "unknown 'kubernetes.io' or 'k8s.io' labels",
        ),
        ({"node_labels": {"bad key": "v"}}, "node_labels: key"),
        ({"node_labels": {"k": "-v"}}, "node_labels[k]: value"),
        ({"node_taints": ({"key": "k", "effect": "Sometimes"},)}, "effect 'Sometimes'"),
        ({"node_taints": ({"key": "k", "effect": "NoSchedule", "extra": "x"},)}, "unknown field"),
        ({"node_taints": ({"key": "k", "effect": "NoSchedule"},) * 2}, "given twice"),
        ({"machine": MachineRef("Not_A_Name")}, "machine"),
        ({"pause_image": "Registry/Pause"}, "pause_image"),
        ({"kube_proxy_mode": "userspace"}, "kube_proxy_mode"),
    ],
)
def test_refuses(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        make_spec(**overrides)
    assert message in str(info.value)


def test_kubelet_labels_allowed() -> None:
    spec = make_spec(
        node_labels={
            "node.kubernetes.io/instance-type": "m5.large",
            "kubelet.kubernetes.io/x": "y",
            "example.node.kubernetes.io/z": "1",
            "topology.kubernetes.io/zone": "a",
        }
    )
    assert len(spec.node_labels) == 4


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"type": "ftp"}, "package_source.type"),
        ({"type": "upstream", "url": "https://x/"}, "upstream takes no url"),
        ({"type": "mirror", "url": "https://m/", "key_fingerprint": "1234"}, "40-hex-digit"),
        ({"type": "mirror", "url": "ftp://m/", "key_fingerprint": KUBERNETES_KEY_FINGERPRINT}, "http(s) URL"),
        ({"type": "offline", "url": "relative/dir"}, "absolute directory"),
        ({"type": "offline", "url": "/opt/p", "key_fingerprint": KUBERNETES_KEY_FINGERPRINT}, "only url"),
    ],
)
def test_package_source_refuses(source: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        PackageSource(**source)
    assert message in str(info.value)


def test_package_source_urls() -> None:
    mirror = PackageSource(
        type="mirror",
        url="https://m.example/v{minor}/deb/",
        key_fingerprint="de15 b144 86cd 377b 9e87  6e1a 2346 54da 9a29 6436",
    )
    assert mirror.key_fingerprint == KUBERNETES_KEY_FINGERPRINT
    assert mirror.apt_url("1.33") == "https://m.example/v1.33/deb/"
    assert mirror.apt_key_url("1.33") == "https://m.example/v1.33/deb/Release.key"
    assert mirror.kube_proxy_base("1.33") == "https://dl.k8s.io/release"
    offline = PackageSource(type="offline", url="file:///opt/pkgs/")
    assert offline.directory == "/opt/pkgs"
    assert offline.apt_url("1.33") == "file:/opt/pkgs"


def test_parse_taint() -> None:
    assert dict(parse_taint("dedicated=gpu:NoSchedule")) == {
        "key": "dedicated",
        "value": "gpu",
        "effect": "NoSchedule",
    }
    assert dict(parse_taint("example.com/k:NoExecute")) == {"key": "example.com/k", "effect": "NoExecute"}
    with pytest.raises(ValueError):
        parse_taint("no-effect")


# Hypothesis: whatever valid labels, taints and Machine names, the user-data is valid YAML whose
# files read back to the same values.
_segment = st.from_regex(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?\Z")
_tricky_values = st.sampled_from(["true", "null", "1.0", "0o10", "yes", "on", "NO", "1e3", "007", ""])
_value = st.one_of(_tricky_values, _segment)
_dns_label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?\Z")
_prefix = st.lists(_dns_label, min_size=1, max_size=3).map(".".join)
_key = st.one_of(_segment, st.tuples(_prefix, _segment).map("/".join)).filter(
    lambda k: not any(d in k.partition("/")[0] for d in ("kubernetes.io", "k8s.io")) or "/" not in k
)
_taint = st.fixed_dictionaries(
    {"key": _key, "effect": st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute"])},
    optional={"value": _value.filter(bool)},
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=st.dictionaries(_key, _value, max_size=4),
    taints=st.lists(_taint, max_size=3, unique_by=lambda t: (t["key"], t["effect"])),
    machine=st.one_of(st.none(), st.tuples(_prefix, st.uuids()).map(lambda p: MachineRef(p[0], str(p[1])))),
)
def test_labels_taints_machines_round_trip(
    labels: dict[str, str], taints: list[dict[str, str]], machine: MachineRef | None
) -> None:
    taints = [t for t in taints if t["key"] != UNINITIALIZED_TAINT["key"]]
    spec = make_spec(node_labels=labels, node_taints=tuple(taints), machine=machine)
    node = read_user_data(render(spec).encode())
    assert dict(node.join.node_labels) == labels
    assert [dict(t) for t in node.join.node_taints] == [*taints, dict(UNINITIALIZED_TAINT)]
    assert node.kubelet_config["registerWithTaints"] == [*taints, dict(UNINITIALIZED_TAINT)]
    assert node.join.machine == machine
    flag = [a for a in node.kubelet_extra_args if a.startswith("--node-labels=")]
    if labels:
        assert flag == ["--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))]
    else:
        assert flag == []


def test_the_renderers_kubelet_label_rules_match_the_api_servers() -> None:
    """The renderer keeps its own copy (it imports nothing from controlplane); NodeRestriction
    and the node agent use controlplane.api.node_labels. They must not drift apart."""
    from controlplane.api import node_labels
    from node_bootstrap.cloudinit import spec as spec_module

    assert spec_module._KUBELET_LABELS == node_labels.KUBELET_LABELS
    assert spec_module._KUBELET_LABEL_NAMESPACES == node_labels.KUBELET_LABEL_NAMESPACES
