"""SIGTERM stops `pinnace server` cleanly at any point after it starts listening.

The server listens, and answers /readyz, while its last start-up writes (cluster-info, the
component kubeconfigs) are still in flight. A supervisor that sees it ready may stop it at once,
so the signal handlers must already be in place then: the exit must be 0, not death by SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ServerProcess, spawn_server


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _term_as_soon_as_it_listens(server: ServerProcess) -> int:
    deadline = time.monotonic() + 60
    while not _listening(server.port):
        assert server.process.poll() is None, server.log()[-4000:]
        assert time.monotonic() < deadline, "the server never listened"
        time.sleep(0.002)
    return server.stop(signal.SIGTERM)


@pytest.mark.parametrize("restarts", [0, 1])
def test_sigterm_right_after_listening_exits_cleanly(tmp_path: Path, restarts: int) -> None:
    data_dir = tmp_path / "data"
    for _ in range(restarts):  # a restart finds its kubeconfig and PKI already written
        assert (
            _term_as_soon_as_it_listens(spawn_server(data_dir, "--controllers=", "--disable-scheduler")) == 0
        )
    server = spawn_server(data_dir, "--controllers=", "--disable-scheduler")
    code = _term_as_soon_as_it_listens(server)
    assert code == 0, f"exit {code}:\n{server.log()[-4000:]}"
