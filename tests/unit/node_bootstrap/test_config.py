"""Flag values and the agent configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from node_bootstrap.agent.cli import add_parser, config_from_args
from node_bootstrap.agent.config import (
    AgentConfig,
    node_ips,
    node_names,
    parse_duration,
    parse_labels,
    parse_taints,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0), ("7", 7.0), ("0.25", 0.25)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10x", "1m 2s"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_parse_labels() -> None:
    assert parse_labels("a=b, example.com/role=web,empty=") == {
        "a": "b",
        "example.com/role": "web",
        "empty": "",
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_labels("novalue")
    with pytest.raises(ValueError, match="invalid label value"):
        parse_labels("a=-bad-")


def test_parse_taints() -> None:
    assert parse_taints("dedicated=gpu:NoSchedule,node-role.kubernetes.io/control-plane:NoExecute") == [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoExecute"},
    ]
    with pytest.raises(ValueError, match="Effect"):
        parse_taints("a=b:Sometimes")


def test_node_names_and_ips() -> None:
    assert node_names(name="solo") == ("solo",)
    assert node_names(count=3, prefix="sim") == ("sim-0", "sim-1", "sim-2")
    assert node_names(count=2) == ("sim-node-0", "sim-node-1")
    with pytest.raises(ValueError):
        node_names(count=2, name="solo")
    assert node_ips("127.0.0.254", 3) == ["127.0.0.254", "127.0.0.255", "127.0.1.0"]


def test_config_validation() -> None:
    assert AgentConfig(node_names=("a",)).lease_renew_interval == 10.0
    with pytest.raises(ValueError, match="distinct"):
        AgentConfig(node_names=("a", "a"))
    with pytest.raises(ValueError, match="capacity cpu"):
        AgentConfig(node_names=("a",), capacity={"cpu": "lots"})


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pinnace")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["node-agent", *argv])


def test_cli_flags_make_a_config(tmp_path: Path) -> None:
    args = _parse(
        "--kubeconfig",
        str(tmp_path / "kc"),
        "--nodes",
        "3",
        "--node-name-prefix",
        "perf",
        "--node-ip",
        "127.0.1.1",
        "--cpu",
        "8",
        "--memory",
        "64Gi",
        "--node-labels",
        "tier=web",
        "--register-with-taints",
        "a=b:NoSchedule",
        "--provider-id",
        "sim://{name}",
        "--zone",
        "z1",
        "--node-status-update-frequency",
        "5s",
        "--port",
        "0",
    )
    config = config_from_args(args)
    assert config.node_names == ("perf-0", "perf-1", "perf-2")
    assert config.capacity["cpu"] == "8" and config.capacity["memory"] == "64Gi"
    assert config.capacity["pods"] == "110"
    assert dict(config.labels) == {"tier": "web"}
    assert config.taints == ({"key": "a", "value": "b", "effect": "NoSchedule"},)
    assert config.node_status_update_frequency == 5.0
    assert config.port == 0 and config.zone == "z1"


def test_cli_needs_a_kubeconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(ValueError, match="kubeconfig"):
        config_from_args(_parse("--node-name", "x"))
