"""pinnace-bootstrap (runner.py), run here against files under tmp_path with real bash."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from node_bootstrap.cloudinit import runner
from node_bootstrap.cloudinit.joinconfig import (
    BOOTSTRAP_CONFIG_PATH,
    BOOTSTRAP_KUBECONFIG_PATH,
    KUBE_PROXY_CONFIG_PATH,
    KUBELET_EXTRA_ARGS_PATH,
    MachineRef,
)
from node_bootstrap.cloudinit.read import _extra_args, read_user_data
from node_bootstrap.cloudinit.render import user_data

from .specs import TOKEN, make_spec

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The files cloud-init would write, under tmp_path, and the runner pointed at them."""
    rendered = read_user_data(user_data(make_spec(metadata="local", machine=MachineRef("pool-a-1"))))
    paths = {
        "CONFIG": BOOTSTRAP_CONFIG_PATH,
        "KUBECONFIG": BOOTSTRAP_KUBECONFIG_PATH,
        "EXTRA_ARGS": KUBELET_EXTRA_ARGS_PATH,
        "KUBE_PROXY_CONFIG": KUBE_PROXY_CONFIG_PATH,
    }
    out = {}
    for attr, path in paths.items():
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rendered.files[path])
        monkeypatch.setattr(runner, attr, str(target))
        out[attr] = target
    for attr in ("MARKER", "INSTANCE_ENV", "LOCAL_METADATA", "LOG_DIR"):
        target = tmp_path / getattr(runner, attr).lstrip("/")
        monkeypatch.setattr(runner, attr, str(target))
        out[attr] = target
    return out


def _config(node: dict[str, Path], steps: list[dict[str, str]]) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(node["CONFIG"].read_text())
    config["steps"] = steps
    return config


def test_log_tail_keeps_the_last_lines_within_2kib() -> None:
    data = "".join(f"line {i}\n" for i in range(100)).encode()
    tail = runner.log_tail(data)
    assert tail.splitlines() == [f"line {i}" for i in range(80, 100)]
    long = ("x" * 500 + "\n") * 30
    assert len(runner.log_tail(long.encode()).encode()) <= 2048
    assert runner.log_tail(b"\xff\xfeok\n").endswith("ok")


def test_with_identity_is_idempotent_and_readable() -> None:
    text = "KUBELET_EXTRA_ARGS='--cloud-provider=external --node-labels=a=b'\n"
    once = runner.with_identity(text, "i-0abc", "aws:///us-east-1a/i-0abc")
    twice = runner.with_identity(once, "i-0abc", "aws:///us-east-1a/i-0abc")
    assert once == twice
    assert _extra_args(once.encode()) == (
        "--cloud-provider=external",
        "--node-labels=a=b",
        "--provider-id=aws:///us-east-1a/i-0abc",
        "--hostname-override=i-0abc",
    )


def test_steps_run_in_order_and_report(node: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(runner, "report", lambda config, state: reports.append(json.loads(json.dumps(state))))
    steps = [
        {"name": "one", "description": "", "script": "echo first; echo to-stderr >&2\n"},
        {"name": "two", "description": "", "script": "echo second\n"},
    ]
    assert runner.run_all(_config(node, steps)) == 0
    assert node["MARKER"].exists()
    assert (node["LOG_DIR"] / "one.log").read_text() == "first\nto-stderr\n"
    assert [r["steps"][-1]["state"] for r in reports] == [
        "Running",
        "Succeeded",
        "Running",
        "Succeeded",
        "Succeeded",
    ]
    last = reports[-1]
    assert last["completed"] is True
    assert "failedStep" not in last
    assert [s["logTail"] for s in last["steps"]] == ["first\nto-stderr", "second"]
    # Already bootstrapped: nothing runs again.
    reports.clear()
    assert runner.run_all(_config(node, steps)) == 0
    assert reports == []


def test_stops_at_the_first_failure_under_pipefail(
    node: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(runner, "report", lambda config, state: reports.append(json.loads(json.dumps(state))))
    steps = [
        {"name": "ok", "description": "", "script": "true\n"},
        {"name": "broken", "description": "", "script": "echo trying\nfalse | cat\necho unreachable\n"},
        {"name": "never", "description": "", "script": "touch never\n"},
    ]
    assert runner.run_all(_config(node, steps)) == 1
    assert not node["MARKER"].exists()
    last = reports[-1]
    assert last["failedStep"] == "broken"
    assert "completed" not in last
    assert [s["name"] for s in last["steps"]] == ["ok", "broken"]
    assert last["steps"][1]["state"] == "Failed"
    assert last["steps"][1]["logTail"] == "trying\nstep broken failed: exit status 1"


def test_metadata_local(node: dict[str, Path]) -> None:
    node["LOCAL_METADATA"].parent.mkdir(parents=True, exist_ok=True)
    node["LOCAL_METADATA"].write_text(
        json.dumps({"instance-id": "i-0ABC", "zone": "zone-b", "region": "local"})
    )
    config = json.loads(node["CONFIG"].read_text())
    assert runner.metadata(config) == 0
    env = node["INSTANCE_ENV"].read_text()
    assert "PINNACE_NODE_NAME=i-0abc\n" in env
    assert "PINNACE_PROVIDER_ID=local:///zone-b/i-0ABC\n" in env
    args = _extra_args(node["EXTRA_ARGS"].read_bytes())
    assert args[-2:] == ("--provider-id=local:///zone-b/i-0ABC", "--hostname-override=i-0abc")
    assert node["KUBE_PROXY_CONFIG"].read_text().endswith('hostnameOverride: "i-0abc"\n')
    runner.metadata(config)
    assert node["KUBE_PROXY_CONFIG"].read_text().count("hostnameOverride") == 1


def test_report_patches_the_machine_status(node: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[urllib.request.Request] = []

    class _Response:
        def __enter__(self) -> _Response:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def urlopen(request: urllib.request.Request, timeout: float, context: object) -> _Response:
        sent.append(request)
        return _Response()

    monkeypatch.setattr(runner.ssl, "create_default_context", lambda cafile: None)
    monkeypatch.setattr(runner.urllib.request, "urlopen", urlopen)
    config = json.loads(node["CONFIG"].read_text())
    runner.report(config, {"steps": [], "completed": True})
    (request,) = sent
    assert request.get_method() == "PATCH"
    assert (
        request.full_url == "https://10.0.0.1:6443/apis/infra.pinnace.dev/v1alpha1/machines/pool-a-1/status"
    )
    assert request.get_header("Content-type") == "application/merge-patch+json"
    assert request.get_header("Authorization") == f"Bearer {TOKEN}"
    assert isinstance(request.data, bytes)
    assert json.loads(request.data) == {"status": {"bootstrap": {"steps": [], "completed": True}}}
    # No Machine: nothing to report to.
    sent.clear()
    runner.report({**config, "machine": None}, {"steps": []})
    assert sent == []


def test_usage(node: dict[str, Path]) -> None:
    assert runner.main(["pinnace-bootstrap", "bogus"]) == 2
