"""A real `pinnace server` process on loopback, for tests that drive it with real clients."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    @property
    def ca(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        pki = self.data_dir / "pki"
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# A server with no controllers and no scheduler (see `bare_server`).
BARE_ARGS = ("--controllers=", "--disable-scheduler", "--disable-admission-plugins=ServiceAccount")


def spawn_server(data_dir: Path, *extra: str, port: int | None = None) -> ServerProcess:
    """`pinnace server` started, not yet ready."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-server-{port}.log"
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controlplane",
            "--log-format",
            "text",
            "server",
            "--data-dir",
            str(data_dir),
            "--secure-port",
            str(port),
            *extra,
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    return ServerProcess(data_dir, port, process, log_path)


def start_server(data_dir: Path, *extra: str, port: int | None = None, timeout: float = 60) -> ServerProcess:
    server = spawn_server(data_dir, *extra, port=port)
    process = server.process
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        if server.kubeconfig.exists() and server.ca.exists():
            try:
                ctx = ssl.create_default_context(cafile=str(server.ca))
                with urllib.request.urlopen(f"{server.url}/readyz", context=ctx, timeout=2) as resp:
                    if resp.status == 200:
                        return server
            except OSError:
                pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not become ready:\n{server.log()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the whole session; tests isolate themselves with their own namespaces."""
    proc = start_server(tmp_path_factory.mktemp("pinnace") / "data")
    yield proc
    code = proc.stop()
    assert code == 0, f"server did not shut down cleanly ({code}):\n{proc.log()[-4000:]}"


@pytest.fixture(scope="session")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server running no controllers and no scheduler: for tests that run the
    controllers they exercise themselves, in-process (see controller_harness.py). No controller
    makes `default` ServiceAccounts here, so, like upstream's integration test servers, it runs
    without the ServiceAccount admission plugin."""
    proc = start_server(tmp_path_factory.mktemp("pinnace-bare") / "data", *BARE_ARGS)
    yield proc
    code = proc.stop()
    assert code == 0, f"server did not shut down cleanly ({code}):\n{proc.log()[-4000:]}"


def kubectl_binaries() -> list[str]:
    found = []
    for name in ("kubectl.1.27", "kubectl.1.33", "kubectl"):
        path = KUBECTL_DIR / name if name != "kubectl" else shutil.which("kubectl")
        if path and Path(path).exists():
            found.append(str(path))
    return found


@pytest.fixture(scope="session")
def bookmark_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """No controllers or scheduler, and a BOOKMARK every second on quiet watches."""
    proc = start_server(
        tmp_path_factory.mktemp("pinnace-bookmarks") / "data",
        "--watch-bookmark-interval",
        "1",
        *BARE_ARGS,
    )
    yield proc
    assert proc.stop() == 0, proc.log()[-4000:]


@pytest.fixture
def kube_env(server: ServerProcess, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KUBECONFIG"] = str(server.kubeconfig)
    env["KUBECACHEDIR"] = str(tmp_path / "kube-cache")
    env["HOME"] = str(tmp_path)
    return env


def user_kubeconfig(server: ServerProcess, directory: Path, name: str, *groups: str) -> Path:
    """A kubeconfig for a new client certificate (CN=name, O=groups) from the server's CA, made
    with `pinnace kubeconfig user` as a user of the CLI would."""
    path = directory / f"{name.replace(':', '_')}.kubeconfig"
    orgs = [arg for g in groups for arg in ("--org", g)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane",
            "kubeconfig",
            "user",
            "--data-dir",
            str(server.data_dir),
            "--client-name",
            name,
            *orgs,
            "--out",
            str(path),
        ],
        cwd=REPO,
        check=True,
    )
    return path


def wait_for_root_ca(core: Any, namespace: str, timeout: float = 20) -> None:
    """Until root-ca-cert-publisher has made `namespace`'s kube-root-ca.crt (`core`: the
    kubernetes client's CoreV1Api), as upstream's e2e framework waits for it in each namespace
    it makes: the ConfigMap lands a moment after the namespace, at a time of its own."""
    deadline = time.monotonic() + timeout
    while not [
        c for c in core.list_namespaced_config_map(namespace).items if c.metadata.name == "kube-root-ca.crt"
    ]:
        assert time.monotonic() < deadline, "kube-root-ca.crt was not published"
        time.sleep(0.05)
