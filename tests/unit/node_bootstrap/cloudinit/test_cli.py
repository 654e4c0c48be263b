"""`pinnace bootstrap render`: flags, the NodePool file, output and errors (exit 2, message on stderr)."""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from pathlib import Path

import pytest
import yaml

from ccm.provisioning import api
from node_bootstrap.cloudinit import cli
from node_bootstrap.cloudinit.read import read_user_data
from node_bootstrap.cloudinit.spec import UNINITIALIZED_TAINT, ca_cert_hashes

from .specs import CA_PEM, SERVER, TOKEN

POOL = {
    "apiVersion": "infra.pinnace.dev/v1alpha1",
    "kind": "NodePool",
    "metadata": {"name": "pool-a"},
    "spec": {
        "replicas": 3,
        "provider": "aws",
        "os": "debian-12",
        "kubernetesVersion": "1.33",
        "labels": {"team": "infra"},
        "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
        "bootstrap": {"packageSource": {"type": "upstream"}},
    },
}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pinnace")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    pool = tmp_path / "pool.yaml"
    pool.write_text(yaml.safe_dump(POOL))
    ca = tmp_path / "ca.crt"
    ca.write_bytes(CA_PEM)
    return {"pool": pool, "ca": ca, "out": tmp_path / "user-data"}


def _argv(inputs: dict[str, Path], *extra: str) -> list[str]:
    return [
        "bootstrap",
        "render",
        "--node-pool",
        str(inputs["pool"]),
        "--server",
        SERVER,
        "--ca-file",
        str(inputs["ca"]),
        "--token",
        TOKEN,
        "--output",
        str(inputs["out"]),
        *extra,
    ]


def test_labels_match_the_operator_api() -> None:
    assert cli.LABEL_NODE_POOL == api.LABEL_NODE_POOL
    assert cli.LABEL_MACHINE == api.LABEL_MACHINE
    assert cli.NODE_POOL_API_VERSION == api.API_VERSION


def test_render_to_file(inputs: dict[str, Path]) -> None:
    assert cli.run(_parse(_argv(inputs, "--machine", "pool-a-x1"))) == 0
    assert inputs["out"].stat().st_mode & 0o777 == 0o600
    node = read_user_data(inputs["out"].read_bytes())
    join = node.join
    assert join.metadata == "aws"
    assert join.provider_id_template == "aws:///{zone}/{instance_id}"
    assert join.ca_cert_hashes == ca_cert_hashes(CA_PEM)
    assert join.machine is not None and join.machine.name == "pool-a-x1"
    assert dict(join.node_labels) == {
        "infra.pinnace.dev/machine": "pool-a-x1",
        "infra.pinnace.dev/node-pool": "pool-a",
        "team": "infra",
    }
    assert [dict(t) for t in join.node_taints] == [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        dict(UNINITIALIZED_TAINT),
    ]
    assert node.bootstrap.token == TOKEN


def test_stdin_gzip_stdout_and_flags(
    inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(inputs["pool"].read_text()))
    argv = _argv(inputs, "--gzip", "--metadata", "local", "--cluster-cidr", "10.10.0.0/16", "--output", "-")
    argv[argv.index(str(inputs["pool"]))] = "-"
    assert cli.run(_parse(argv)) == 0
    out = capsysbinary.readouterr().out
    assert out[:2] == b"\x1f\x8b"
    node = read_user_data(out)
    assert node.join.metadata == "local"
    assert node.join.provider_id_template == "local:///{zone}/{instance_id}"
    assert node.join.cluster_cidr == "10.10.0.0/16"
    assert gzip.decompress(out).startswith(b"#cloud-config\n")


def test_no_gzip(inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(_parse(_argv(inputs, "--no-gzip"))) == 0
    assert inputs["out"].read_bytes().startswith(b"#cloud-config\n")


def test_mirror_from_the_pool(inputs: dict[str, Path], tmp_path: Path) -> None:
    pool = {
        **POOL,
        "spec": {
            **POOL["spec"],
            "bootstrap": {
                "packageSource": {  # type: ignore[dict-item]
                    "type": "mirror",
                    "url": "https://mirror.example.com/deb/",
                    "keyFingerprint": "DE15B14486CD377B9E876E1A234654DA9A296436",
                }
            },
        },
    }
    inputs["pool"].write_text(yaml.safe_dump(pool))
    assert cli.run(_parse(_argv(inputs))) == 0
    steps = {s.name: s.script for s in read_user_data(inputs["out"].read_bytes()).join.steps}
    assert "https://mirror.example.com/deb/Release.key" in steps["package-source"]


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        ({}, ["--token", "nope"], "pinnace token create"),
        ({}, ["--discovery-token-ca-cert-hash", "sha256:" + "1" * 64], "none of them is the hash"),
        ({"provider": "vsphere"}, [], "give --metadata"),
        ({"os": "centos-9"}, [], "os: 'centos-9'"),
        ({"kubernetesVersion": ""}, [], "spec.kubernetesVersion is required"),
        ({"labels": {"node-role.kubernetes.io/worker": ""}}, [], "node-role.kubernetes.io/worker"),
    ],
)
def test_errors(
    inputs: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    change: dict[str, object],
    extra: list[str],
    message: str,
) -> None:
    inputs["pool"].write_text(yaml.safe_dump({**POOL, "spec": {**POOL["spec"], **change}}))  # type: ignore[dict-item]
    assert cli.run(_parse(_argv(inputs, *extra))) == 2
    err = capsys.readouterr().err
    assert err.startswith("pinnace bootstrap render: ")
    assert message in err
    assert not inputs["out"].exists()


def test_bad_files(inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(_argv(inputs))
    args.ca_file = tmp_path / "missing.crt"
    assert cli.run(args) == 2
    assert "--ca-file" in capsys.readouterr().err
    inputs["pool"].write_text("kind: ConfigMap\n")
    assert cli.run(_parse(_argv(inputs))) == 2
    assert "expected one NodePool, found 0" in capsys.readouterr().err
    inputs["pool"].write_text("{ not yaml")
    assert cli.run(_parse(_argv(inputs))) == 2
    assert "not YAML" in capsys.readouterr().err
    inputs["pool"].write_text(yaml.safe_dump({**POOL, "apiVersion": "v1"}))
    assert cli.run(_parse(_argv(inputs))) == 2
    assert "apiVersion 'v1'" in capsys.readouterr().err
