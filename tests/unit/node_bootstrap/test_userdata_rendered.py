"""The node agent booting from user-data the renderer made (node_bootstrap/cloudinit/render.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node_bootstrap.agent.bootsteps import MACHINES, BootProgress, BootState, StepFault, boot_instance
from node_bootstrap.agent.clock import FakeClock
from node_bootstrap.agent.userdata import CAPinError, InstanceFacts, agent_config_for
from node_bootstrap.cloudinit.joinconfig import MachineRef
from node_bootstrap.cloudinit.read import read_user_data
from node_bootstrap.cloudinit.render import render, user_data
from node_bootstrap.cloudinit.spec import BootstrapSpec
from node_bootstrap.cloudinit.steps import STEPS
from tests.unit.node_bootstrap.fakes import FakeApi
from tests.unit.node_bootstrap.userdata_kit import TOKEN, UNINITIALIZED, make_ca, pin_of

FACTS = InstanceFacts("i-0abc0000000000001", "us-east-1a", "us-east-1", "10.0.1.17", "t3.medium")


def spec(ca_pem: bytes, **extra: object) -> BootstrapSpec:
    values: dict[str, object] = {
        "os": "ubuntu-24.04",
        "kubernetes_version": "1.33",
        "server": "https://10.0.0.10:6443",
        "ca_pem": ca_pem,
        "token": TOKEN,
        "metadata": "aws",
        "machine": MachineRef("workers-abcde", "uid-9"),
        "node_labels": {"infra.pinnace.dev/node-pool": "workers", "tier": "web"},
        **extra,
    }
    return BootstrapSpec(**values)  # type: ignore[arg-type]


def test_rendered_user_data_makes_the_node(tmp_path: Path) -> None:
    ca = make_ca()
    rendered = read_user_data(user_data(spec(ca)))
    config = agent_config_for(rendered, FACTS, data_dir=tmp_path)
    assert config.node_names == (FACTS.instance_id,)
    assert config.provider_id == "aws:///us-east-1a/i-0abc0000000000001"
    assert config.cloud_provider == "external"
    assert config.labels["infra.pinnace.dev/node-pool"] == "workers"
    assert config.labels["tier"] == "web"
    assert UNINITIALIZED in [dict(t) for t in config.taints]
    assert [s.name for s in rendered.join.steps] == list(STEPS)


def test_a_swapped_ca_is_refused(tmp_path: Path) -> None:
    """User-data whose CA was replaced on the way (the pins still name the real one)."""
    ca, other = make_ca("real"), make_ca("other")
    text = render(spec(ca))

    def indented(pem: bytes) -> str:
        return "\n".join("    " + line for line in pem.decode().splitlines())

    assert indented(ca) in text
    rendered = read_user_data(text.replace(indented(ca), indented(other)).encode())
    with pytest.raises(CAPinError, match="refusing to join") as caught:
        agent_config_for(rendered, FACTS, data_dir=tmp_path)
    assert pin_of(other) in str(caught.value) and pin_of(ca) in str(caught.value)


def test_compressed_rendering_reads_back(tmp_path: Path) -> None:
    data = user_data(spec(make_ca()), compress=True)
    assert data[:2] == b"\x1f\x8b"
    assert agent_config_for(read_user_data(data), FACTS, data_dir=tmp_path).node_names == (FACTS.instance_id,)


async def test_the_metadata_step_writes_the_kubelets_identity(tmp_path: Path) -> None:
    """The instance-metadata step's bookkeeping (the runner's own `with_identity`), then a
    failure at the next step: reported with its log tail, and no kubelet started."""
    api = FakeApi()
    api.put_object(MACHINES.plural, {"metadata": {"name": "workers-abcde"}})
    progress = BootProgress()
    result = await boot_instance(
        user_data(spec(make_ca())),
        FACTS,
        data_dir=tmp_path,
        stop=asyncio.Event(),
        clock=FakeClock(),
        fault=StepFault("kernel-modules"),
        progress=progress,
        reporter_api=api,
    )
    assert not result.succeeded and progress.state is BootState.FAILED
    root = tmp_path / FACTS.instance_id / "rootfs"
    extra = (root / "etc/default/kubelet").read_text()
    assert "--provider-id=aws:///us-east-1a/i-0abc0000000000001" in extra
    assert "--hostname-override=i-0abc0000000000001" in extra
    assert (
        "PINNACE_PROVIDER_ID=aws:///us-east-1a/i-0abc0000000000001"
        in (root / "etc/pinnace/instance.env").read_text()
    )
    assert 'hostnameOverride: "i-0abc0000000000001"' in (root / "var/lib/kube-proxy/config.conf").read_text()
    status = api.obj(MACHINES.plural, "workers-abcde")["status"]["bootstrap"]  # type: ignore[index]
    assert [(s["name"], s["state"]) for s in status["steps"]] == [
        ("instance-metadata", "Succeeded"),
        ("kernel-modules", "Failed"),
    ]
    assert (
        status["steps"][0]["logTail"]
        == "node i-0abc0000000000001, providerID aws:///us-east-1a/i-0abc0000000000001"
    )
    assert status["failedStep"] == "kernel-modules"
    assert "modprobe: FATAL: Module" in status["steps"][1]["logTail"]
    assert progress.agent is None
