"""agent_config_for: the node agent's configuration from an instance's user-data and metadata."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_bootstrap.agent.bootstrap import load_bootstrap_kubeconfig
from node_bootstrap.agent.userdata import (
    CAPinError,
    InstanceFacts,
    UserDataError,
    agent_config_for,
    bootstrap_kubeconfig_yaml,
    check_ca_pin,
    node_labels,
)
from node_bootstrap.cloudinit.joinconfig import JoinConfigError
from node_bootstrap.cloudinit.read import read_user_data
from tests.unit.node_bootstrap.userdata_kit import TOKEN, UNINITIALIZED, make_ca, pin_of, user_data

FACTS = InstanceFacts(
    instance_id="i-0123456789abcdef0",
    zone="local-1a",
    region="local-1",
    private_ip="10.0.0.4",
    instance_type="local.medium",
)


def config_for(data: bytes, tmp_path: Path, facts: InstanceFacts = FACTS):  # type: ignore[no-untyped-def]
    return agent_config_for(read_user_data(data), facts, data_dir=tmp_path)


def test_the_node_is_the_instance(tmp_path: Path) -> None:
    ca = make_ca()
    config = config_for(user_data(ca_pem=ca, server="https://10.0.0.1:6443"), tmp_path)
    assert config.node_names == ("i-0123456789abcdef0",)
    assert config.provider_id == "local:///local-1a/i-0123456789abcdef0"
    assert (config.zone, config.region, config.instance_type) == ("local-1a", "local-1", "local.medium")
    assert config.node_ip == "10.0.0.4"
    assert config.cloud_provider == "external"
    assert config.labels == {"infra.pinnace.dev/node-pool": "pool-a", "tier": "web"}
    assert [dict(t) for t in config.taints] == [UNINITIALIZED]
    assert (config.port, config.bind_address) == (0, "127.0.0.1")
    home = tmp_path / "i-0123456789abcdef0"
    assert config.cert_dir == home / "pki"
    assert config.bootstrap_kubeconfig == home / "bootstrap-kubelet.conf"
    assert config.bootstraps and config.kubeconfig is None


@pytest.mark.parametrize(
    ("metadata", "template", "expected"),
    [
        ("aws", "aws:///{zone}/{instance_id}", "aws:///local-1a/i-0123456789abcdef0"),
        ("local", "local:///{zone}/{instance_id}", "local:///local-1a/i-0123456789abcdef0"),
        ("openstack", "openstack:///{instance_id}", "openstack:///i-0123456789abcdef0"),
        ("gce", "gce://project-x/{zone}/{instance_id}", "gce://project-x/local-1a/i-0123456789abcdef0"),
    ],
)
def test_provider_id_per_metadata_kind(tmp_path: Path, metadata: str, template: str, expected: str) -> None:
    config = config_for(user_data(metadata=metadata, template=template), tmp_path)
    assert config.provider_id.format(name="x", index=0) == expected


def test_unknown_metadata_service_and_placeholder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserDataError, match="unknown instance metadata service 'azure'"):
        config_for(user_data(metadata="azure"), tmp_path)
    with pytest.raises(UserDataError, match="unknown placeholder"):
        config_for(user_data(template="local:///{project}/{instance_id}"), tmp_path)


def test_ca_must_match_a_pin(tmp_path: Path) -> None:
    ca, other = make_ca("real"), make_ca("other")
    rendered = read_user_data(user_data(ca_pem=ca, pins=[pin_of(other), pin_of(ca)]))
    assert check_ca_pin(rendered) == pin_of(ca)
    with pytest.raises(CAPinError) as caught:
        config_for(user_data(ca_pem=ca, pins=[pin_of(other)]), tmp_path)
    message = str(caught.value)
    assert "refusing to join" in message
    assert pin_of(ca) in message and pin_of(other) in message
    with pytest.raises(CAPinError, match="no caCertHashes"):
        config_for(user_data(ca_pem=ca, pins=[]), tmp_path)
    with pytest.raises(CAPinError, match="caCertHashes"):
        config_for(user_data(ca_pem=ca, pins=["md5:1234"]), tmp_path)


def test_pins_are_compared_case_insensitively(tmp_path: Path) -> None:
    ca = make_ca()
    config = config_for(user_data(ca_pem=ca, pins=[pin_of(ca).upper().replace("SHA256", "sha256")]), tmp_path)
    assert config.node_names == (FACTS.instance_id,)


def test_ca_referenced_by_path_and_gzip_user_data(tmp_path: Path) -> None:
    ca = make_ca()
    data = user_data(ca_pem=ca, ca_as_file=True, compress=True)
    assert data[:2] == b"\x1f\x8b"
    rendered = read_user_data(data)
    config = agent_config_for(rendered, FACTS, data_dir=tmp_path)
    assert config.bootstrap_kubeconfig is not None
    path = config.bootstrap_kubeconfig
    path.parent.mkdir(parents=True)
    path.write_text(bootstrap_kubeconfig_yaml(rendered))
    source = load_bootstrap_kubeconfig(path)
    assert (source.server, source.ca_pem, source.token) == ("https://127.0.0.1:6443", ca, TOKEN)


def test_taints_from_kubelet_config_flags_and_join_config(tmp_path: Path) -> None:
    dedicated = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    data = user_data(
        register_with_taints=[UNINITIALIZED, dedicated],
        extra_args=["--cloud-provider=external", "--register-with-taints=spot:PreferNoSchedule"],
        taints=[UNINITIALIZED, {"key": "pool", "value": "a", "effect": "NoExecute"}],
    )
    config = config_for(data, tmp_path)
    assert [dict(t) for t in config.taints] == [
        UNINITIALIZED,
        dedicated,
        {"key": "spot", "effect": "PreferNoSchedule"},
        {"key": "pool", "value": "a", "effect": "NoExecute"},
    ]


def test_labels_flag_wins_and_two_word_form(tmp_path: Path) -> None:
    data = user_data(extra_args=["--node-labels", "tier=db,infra.pinnace.dev/node-pool=override"])
    rendered = read_user_data(data)
    assert node_labels(rendered) == {"infra.pinnace.dev/node-pool": "override", "tier": "db"}
    config = agent_config_for(rendered, FACTS, data_dir=tmp_path)
    assert config.cloud_provider == ""  # no --cloud-provider flag: no uninitialized taint added by the agent


def test_kubelet_refuses_labels_in_kubernetes_namespaces(tmp_path: Path) -> None:
    allowed = "node.kubernetes.io/role=worker,topology.kubernetes.io/zone=z,kubelet.kubernetes.io/x=y"
    assert (
        "node.kubernetes.io/role"
        in config_for(user_data(extra_args=[f"--node-labels={allowed}"]), tmp_path).labels
    )
    with pytest.raises(UserDataError) as caught:
        config_for(user_data(extra_args=["--node-labels=node-role.kubernetes.io/worker="]), tmp_path)
    assert (
        "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: [node-role.kubernetes.io/worker]"
        in str(caught.value)
    )
    with pytest.raises(UserDataError, match="--node-labels"):
        config_for(user_data(extra_args=["--node-labels=bad label"]), tmp_path)


def test_in_tree_cloud_providers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserDataError, match="only 'external'"):
        config_for(user_data(extra_args=["--cloud-provider=aws"]), tmp_path)


def test_kubelet_configuration_timing_and_max_pods(tmp_path: Path) -> None:
    data = user_data(
        kubelet_config={"nodeStatusUpdateFrequency": "5s", "nodeLeaseDurationSeconds": 20, "maxPods": 58}
    )
    config = config_for(data, tmp_path)
    assert config.node_status_update_frequency == 5.0
    assert config.node_lease_duration_seconds == 20
    assert config.capacity["pods"] == "58"
    overridden = agent_config_for(
        read_user_data(data), FACTS, data_dir=tmp_path, overrides={"node_lease_duration_seconds": 4}
    )
    assert overridden.node_lease_duration_seconds == 4
    with pytest.raises(UserDataError, match="cannot run this node"):
        agent_config_for(read_user_data(data), FACTS, data_dir=tmp_path, overrides={"no_such_field": 1})


def test_bad_token_and_missing_instance_id(tmp_path: Path) -> None:
    with pytest.raises(UserDataError, match="bootstrap token"):
        config_for(user_data(token="not-a-token"), tmp_path)
    with pytest.raises(UserDataError, match="instance id"):
        config_for(user_data(), tmp_path, InstanceFacts(instance_id=""))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"#!/bin/bash\necho hi\n", "does not start with '#cloud-config'"),
        (b"#cloud-config\nwrite_files: []\n", "does not write"),
        (gzip.compress(b"#cloud-config\n", mtime=0)[:-4], "gzip"),
        (b"\xff\xfe", "UTF-8"),
        (b"#cloud-config\n- a\n", "not a mapping"),
    ],
)
def test_user_data_that_is_not_pinnaces(data: bytes, message: str) -> None:
    with pytest.raises(JoinConfigError, match=message):
        read_user_data(data)


@given(
    zone=st.from_regex(r"[a-z]{2}-[a-z]+-[1-9][a-f]", fullmatch=True),
    number=st.integers(min_value=0, max_value=16**17 - 1),
)
def test_provider_id_always_names_the_instance(zone: str, number: int) -> None:
    facts = InstanceFacts(instance_id=f"i-{number:017x}", zone=zone, region=zone[:-1])
    rendered = read_user_data(USER_DATA_AWS)
    config = agent_config_for(rendered, facts, data_dir=Path("/nonexistent"))
    pid = config.provider_id.format(name=facts.instance_id, index=0)
    assert pid == f"aws:///{zone}/{facts.instance_id}"
    assert config.node_names == (facts.instance_id,)


USER_DATA_AWS = user_data(metadata="aws", template="aws:///{zone}/{instance_id}")
