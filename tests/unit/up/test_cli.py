"""`pinnace up` / `pinnace down` on the usual mistakes: one message, exit 1, no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from controlplane.__main__ import _parser
from controlplane.up import cli


def _unused(*_: object, **__: object) -> None:
    raise AssertionError("the server must not start")


def main(argv: list[str]) -> int:
    """`pinnace <argv>` without the logging set-up (which would take over the test's handlers)."""
    return cli.run(_parser().parse_args(argv), cli.ServerHooks(parse=_unused, config=_unused, serve=_unused))  # type: ignore[arg-type]


def test_up_refuses_a_data_dir_of_a_newer_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "VERSION").write_text("7\n")
    assert main(["up", "--data-dir", str(tmp_path), "--log-file", "-"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pinnace up: the data directory")
    assert "format 7" in err
    assert "Traceback" not in err


def test_up_on_a_busy_port_says_so_before_making_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert main(["up", "--data-dir", str(tmp_path / "d"), "--port", str(port), "--log-file", "-"]) == 1
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err
    assert not (tmp_path / "d" / "pki").exists()


def test_down_without_a_cluster_says_there_is_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["down", "--data-dir", str(tmp_path), "--log-file", "-"]) == 1
    assert "no cluster made by `pinnace up`" in capsys.readouterr().err


def test_aws_flags_without_aws_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--data-dir", str(tmp_path), "--region", "us-east-1", "--log-file", "-"]) == 1
    assert "--provider aws" in capsys.readouterr().err


def test_a_simulated_failure_must_name_a_real_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "up",
        "--data-dir",
        str(tmp_path),
        "--log-file",
        "-",
        "--simulate-bootstrap-failure",
        "install-kubelt",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "no bootstrap step 'install-kubelt'" in err and "install-kubelet" in err


def test_a_simulated_failure_needs_simulated_nodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "up",
        "--data-dir",
        str(tmp_path),
        "--log-file",
        "-",
        "--provider",
        "aws",
        "--region",
        "us-east-1",
    ]
    assert main([*argv, "--simulate-bootstrap-failure", "install-kubelet"]) == 1
    assert "needs simulated nodes" in capsys.readouterr().err
