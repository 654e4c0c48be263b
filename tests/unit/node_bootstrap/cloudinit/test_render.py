"""The rendered #cloud-config: golden files, cloud-init's schema, size, and reading it back."""

from __future__ import annotations

import gzip
import os
import py_compile
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from node_bootstrap.cloudinit import files, joinconfig, runner
from node_bootstrap.cloudinit.joinconfig import (
    BOOTSTRAP_CONFIG_PATH,
    BOOTSTRAP_KUBECONFIG_PATH,
    BOOTSTRAP_SCRIPT_PATH,
    CA_PATH,
    KUBE_PROXY_CONFIG_PATH,
    KUBELET_CONFIG_PATH,
    KUBELET_EXTRA_ARGS_PATH,
    SUCCESS_MARKER_PATH,
    MachineRef,
)
from node_bootstrap.cloudinit.read import decode_user_data, read_user_data
from node_bootstrap.cloudinit.render import EC2_USER_DATA_LIMIT, render, runner_script, user_data
from node_bootstrap.cloudinit.spec import KUBERNETES_KEY_FINGERPRINT, UNINITIALIZED_TAINT
from node_bootstrap.cloudinit.steps import STEPS

from .specs import CA_PEM, GOLDEN, GOLDEN_SPECS, SERVER, TOKEN, make_spec

UPDATE = os.environ.get("PINNACE_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("name", sorted(GOLDEN_SPECS))
def test_golden(name: str) -> None:
    text = render(GOLDEN_SPECS[name])
    path = GOLDEN / f"{name}.yaml"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with PINNACE_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from {path} (PINNACE_UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.skipif(shutil.which("cloud-init") is None, reason="cloud-init is not installed")
@pytest.mark.parametrize("name", sorted(GOLDEN_SPECS))
def test_cloud_init_schema(name: str, tmp_path: Path) -> None:
    path = tmp_path / "user-data"
    path.write_text(render(GOLDEN_SPECS[name]))
    proc = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Valid cloud-config" in proc.stdout


def test_same_spec_same_bytes() -> None:
    spec = GOLDEN_SPECS["local-machine-labels-taints"]
    again = make_spec(
        **{f: getattr(spec, f) for f in ("kubernetes_version", "metadata", "machine", "cluster_cidr")},
        node_labels=dict(reversed(list(spec.node_labels.items()))),
        node_taints=spec.node_taints,
        cluster_dns=spec.cluster_dns,
    )
    assert render(spec) == render(again)
    assert user_data(spec, compress=True) == user_data(again, compress=True)


@pytest.mark.parametrize("name", sorted(GOLDEN_SPECS))
def test_user_data_fits_ec2(name: str) -> None:
    spec = GOLDEN_SPECS[name]
    text = render(spec).encode()
    data = user_data(spec)
    assert len(data) <= EC2_USER_DATA_LIMIT
    if len(text) > EC2_USER_DATA_LIMIT:
        assert data[:2] == b"\x1f\x8b"
        assert gzip.decompress(data) == text
    else:
        assert data == text


def test_gzip_on_demand_and_never() -> None:
    spec = make_spec()
    text = render(spec).encode()
    assert gzip.decompress(user_data(spec, compress=True)) == text
    assert user_data(spec, compress=False) == text
    assert decode_user_data(user_data(spec, compress=True)) == decode_user_data(text)


def test_small_user_data_is_not_compressed(monkeypatch: pytest.MonkeyPatch) -> None:
    from node_bootstrap.cloudinit import render as render_module

    monkeypatch.setattr(render_module, "EC2_USER_DATA_LIMIT", 10**6)
    assert user_data(make_spec())[:13] == b"#cloud-config"


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(compress: bool) -> None:
    spec = GOLDEN_SPECS["local-machine-labels-taints"]
    node = read_user_data(user_data(spec, compress=compress))
    join = node.join
    assert join.server == SERVER
    assert join.ca_cert_hashes == spec.ca_cert_hashes
    assert join.metadata == "local"
    assert join.provider_id(zone="zone-a", region="r", instance_id="i-0abc") == "local:///zone-a/i-0abc"
    assert join.kubernetes_version == "1.33.2"
    assert join.cluster_cidr == "10.244.0.0/16,fd00:10:244::/56"
    assert join.machine == MachineRef("pool-a-x7k2p", "0d6f3c2e-1111-2222-3333-444455556666")
    assert tuple(s.name for s in join.steps) == STEPS
    assert dict(join.node_labels) == dict(spec.node_labels)
    assert [dict(t) for t in join.node_taints] == [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        dict(UNINITIALIZED_TAINT),
    ]
    assert node.bootstrap.server == SERVER
    assert node.bootstrap.token == TOKEN
    assert node.bootstrap.ca_pem == CA_PEM
    assert node.files[CA_PATH] == CA_PEM
    assert node.kubelet_extra_args == (
        "--cloud-provider=external",
        "--kube-api-content-type=application/json",
        f"--bootstrap-kubeconfig={BOOTSTRAP_KUBECONFIG_PATH}",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--node-labels=infra.pinnace.dev/node-pool=pool-a,node.kubernetes.io/instance-type=m5.large",
    )
    config = node.kubelet_config
    assert config["kind"] == "KubeletConfiguration"
    assert config["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
    assert config["cgroupDriver"] == "systemd"
    assert config["clusterDNS"] == ["10.100.0.10"]
    assert config["clusterDomain"] == "cluster.local"
    assert config["authentication"]["x509"]["clientCAFile"] == CA_PATH
    assert config["authentication"]["webhook"]["enabled"] is True
    assert config["authorization"]["mode"] == "Webhook"
    assert config["rotateCertificates"] is True
    assert config["serverTLSBootstrap"] is False  # no in-tree kubelet-serving approver
    assert config["containerRuntimeEndpoint"] == "unix:///run/containerd/containerd.sock"
    assert config["registerWithTaints"] == [dict(t) for t in join.node_taints]


def test_written_files_and_modes() -> None:
    doc = decode_user_data(user_data(make_spec(machine=MachineRef("m-1"))))
    modes = {e["path"]: e["permissions"] for e in doc["write_files"]}
    assert modes[BOOTSTRAP_KUBECONFIG_PATH] == "0600"
    assert modes[BOOTSTRAP_SCRIPT_PATH] == "0755"
    for path in (
        KUBELET_CONFIG_PATH,
        KUBELET_EXTRA_ARGS_PATH,
        KUBE_PROXY_CONFIG_PATH,
        BOOTSTRAP_CONFIG_PATH,
        CA_PATH,
    ):
        assert path in modes
    assert doc["runcmd"] == [[BOOTSTRAP_SCRIPT_PATH]]


def test_nothing_long_lived_in_the_user_data() -> None:
    text = render(make_spec())
    assert "PRIVATE KEY" not in text
    assert text.count(TOKEN) == 1  # the bootstrap kubeconfig only


def test_kube_proxy_configuration() -> None:
    node = read_user_data(user_data(make_spec(cluster_cidr="10.200.0.0/16", kube_proxy_mode="nftables")))
    config = yaml.safe_load(node.files[KUBE_PROXY_CONFIG_PATH])
    assert config["kind"] == "KubeProxyConfiguration"
    assert config["clusterCIDR"] == "10.200.0.0/16"
    assert config["mode"] == "nftables"
    assert config["clientConnection"] == {
        "contentType": "application/json",
        "kubeconfig": files.KUBE_PROXY_KUBECONFIG_PATH,
    }
    kubeconfig = yaml.safe_load(node.files[files.KUBE_PROXY_KUBECONFIG_PATH])
    user = kubeconfig["users"][0]["user"]
    assert user == {"client-certificate": files.KUBELET_CLIENT_CERT, "client-key": files.KUBELET_CLIENT_CERT}
    assert kubeconfig["clusters"][0]["cluster"] == {"server": SERVER, "certificate-authority": CA_PATH}
    unit = node.files[files.KUBE_PROXY_UNIT_PATH].decode()
    assert f"ExecStart={files.KUBE_PROXY_BIN} --config={KUBE_PROXY_CONFIG_PATH}" in unit
    dropin = node.files[files.KUBELET_DROPIN_PATH].decode()
    assert f"EnvironmentFile=-{KUBELET_EXTRA_ARGS_PATH}" in dropin
    assert "$KUBELET_EXTRA_ARGS" in dropin


@pytest.mark.parametrize("pause", ["registry.k8s.io/pause:3.10", "registry.example.com/pause:3.10"])
def test_containerd_configs(pause: str) -> None:
    node = read_user_data(user_data(make_spec(pause_image=pause)))
    v2 = tomllib.loads(node.files[files.CONTAINERD_CONFIG_V2].decode())
    assert v2["version"] == 2
    assert v2["disabled_plugins"] == []
    cri = v2["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == pause
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    v3 = tomllib.loads(node.files[files.CONTAINERD_CONFIG_V3].decode())
    assert v3["version"] == 3
    assert v3["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == pause
    runtime = v3["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True


def test_kernel_settings() -> None:
    node = read_user_data(user_data(make_spec()))
    assert node.files[files.MODULES_LOAD_PATH] == b"overlay\nbr_netfilter\n"
    sysctl = node.files[files.SYSCTL_PATH].decode()
    for key in (
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
        "net.ipv4.ip_forward",
    ):
        assert f"{key} = 1" in sysctl


def test_runner_is_shipped_and_compiles(tmp_path: Path) -> None:
    node = read_user_data(user_data(make_spec()))
    script = node.files[BOOTSTRAP_SCRIPT_PATH]
    assert script.decode() == runner_script()
    assert script.startswith(b"#!/usr/bin/env python3\n")
    path = tmp_path / "pinnace-bootstrap.py"
    path.write_bytes(script)
    py_compile.compile(str(path), doraise=True)


def test_runner_paths_are_the_contract() -> None:
    assert runner.CONFIG == joinconfig.BOOTSTRAP_CONFIG_PATH
    assert runner.KUBECONFIG == joinconfig.BOOTSTRAP_KUBECONFIG_PATH
    assert runner.CA == joinconfig.CA_PATH
    assert runner.EXTRA_ARGS == joinconfig.KUBELET_EXTRA_ARGS_PATH
    assert runner.KUBE_PROXY_CONFIG == joinconfig.KUBE_PROXY_CONFIG_PATH
    assert runner.MARKER == joinconfig.SUCCESS_MARKER_PATH == SUCCESS_MARKER_PATH


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_every_step_script_parses() -> None:
    scripts: dict[str, str] = {}
    for name, spec in sorted(GOLDEN_SPECS.items()):
        for step in read_user_data(user_data(spec)).join.steps:
            scripts.setdefault(step.script, f"{name}/{step.name}")
    for script, label in scripts.items():
        proc = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{label}: {proc.stderr}"


def test_upstream_key_is_pinned() -> None:
    steps = {
        s.name: s.script for s in read_user_data(user_data(make_spec(kubernetes_version="1.31"))).join.steps
    }
    source = steps["package-source"]
    assert "https://pkgs.k8s.io/core:/stable:/v1.31/deb/Release.key" in source
    assert f"gpg --batch --export {KUBERNETES_KEY_FINGERPRINT}" in source
    assert "https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /" in source
    assert "apt-mark hold kubelet" in steps["install-kubelet"]
    assert "https://dl.k8s.io/release/v$version/bin/linux/" in steps["install-kube-proxy"]
    assert "sha256sum -c" in steps["install-kube-proxy"]


def test_patch_version_is_pinned() -> None:
    steps = {
        s.name: s.script for s in read_user_data(user_data(make_spec(kubernetes_version="1.33.2"))).join.steps
    }
    assert "/^1[.]33[.]2-/" in steps["install-kubelet"]
    assert 'kubelet="$version"' in steps["install-kubelet"]


def test_mirror_and_offline_sources() -> None:
    mirror = {s.name: s.script for s in read_user_data(user_data(GOLDEN_SPECS["mirror"])).join.steps}
    assert "https://mirror.example.com/k8s/v1.32/deb/Release.key" in mirror["package-source"]
    assert "0123456789ABCDEF0123456789ABCDEF01234567" in mirror["package-source"]
    assert "https://mirror.example.com/dl/v$version/bin/linux/" in mirror["install-kube-proxy"]
    offline = {s.name: s.script for s in read_user_data(user_data(GOLDEN_SPECS["offline"])).join.steps}
    assert "file:/opt/pinnace/packages ./" in offline["package-source"]
    assert "curl" not in offline["package-source"] + offline["install-kube-proxy"]
    assert "cp /opt/pinnace/packages/kube-proxy" in offline["install-kube-proxy"]


def test_disable_swap_comments_out_fstab_swap(tmp_path: Path) -> None:
    fstab = tmp_path / "fstab"
    fstab.write_text(
        "LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n"
        "/swap.img\tnone\tswap\tsw\t0\t0\n"
        "# /old none swap sw 0 0\n"
        "UUID=1234 none swap defaults 0 0\n"
    )
    script = next(s.script for s in make_spec_steps() if s.name == "disable-swap")
    sed = next(line for line in script.splitlines() if line.startswith("sed "))
    subprocess.run(["bash", "-c", sed.replace("/etc/fstab", shlex.quote(str(fstab)))], check=True)
    assert fstab.read_text().splitlines() == [
        "LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1",
        "#/swap.img\tnone\tswap\tsw\t0\t0",
        "# /old none swap sw 0 0",
        "#UUID=1234 none swap defaults 0 0",
    ]


def make_spec_steps() -> tuple[joinconfig.Step, ...]:
    return read_user_data(user_data(make_spec())).join.steps
