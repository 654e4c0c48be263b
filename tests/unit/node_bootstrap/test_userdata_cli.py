"""`pinnace node-agent --user-data FILE`: one node booted from an instance's user-data."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from node_bootstrap.agent.cli import add_parser, run
from tests.unit.node_bootstrap.userdata_kit import make_ca, pin_of, user_data


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pinnace")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["node-agent", *argv])


def test_a_failed_step_exits_1_and_leaves_the_instance_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "user-data"
    path.write_bytes(user_data(machine=None, compress=True))
    args = parse(
        "--user-data", str(path), "--instance-id", "i-0cli", "--zone", "local-1a", "--region", "local-1",
        "--node-ip", "10.0.0.7", "--data-dir", str(tmp_path / "disk"), "--fail-step", "install-kubelet",
        "--port", "0",
    )  # fmt: skip
    assert run(args) == 1
    assert "bootstrap step install-kubelet failed" in capsys.readouterr().err
    root = tmp_path / "disk/i-0cli/rootfs"
    assert (root / "var/lib/pinnace/bootstrap-failed").read_text() == "install-kubelet\n"
    assert not (root / "var/lib/pinnace/bootstrap-complete").exists()


def test_user_data_mode_errors_are_for_the_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "user-data"
    path.write_bytes(user_data(machine=None))
    assert run(parse("--user-data", str(path), "--instance-id", "i-1")) == 1
    assert "--user-data needs --data-dir" in capsys.readouterr().err
    ca = make_ca()
    path.write_bytes(user_data(ca_pem=ca, pins=[pin_of(make_ca("x"))], machine=None))
    assert run(parse("--user-data", str(path), "--instance-id", "i-1", "--data-dir", str(tmp_path))) == 1
    assert "refusing to join" in capsys.readouterr().err
    assert run(parse("--user-data", str(tmp_path / "missing"), "--data-dir", str(tmp_path))) == 1
    assert "No such file" in capsys.readouterr().err
