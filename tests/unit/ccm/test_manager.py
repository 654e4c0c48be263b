"""Assembling the CCM: controllers by capability and --controllers, the local state file under
the data directory, the Lease upstream's CCM uses."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import cast

import pytest

from ccm.manager import LEASE_NAME, build_manager, controllers_for, open_provider
from ccm.settings import CloudSettings
from controlplane.client import Client
from providers.capabilities import CloudProvider
from providers.errors import InvalidConfiguration


def names(settings: CloudSettings, selection: str = "*") -> list[str]:
    return [c.name for c in controllers_for(settings, selection)]


def test_controllers_follow_capabilities_and_selection(provider: CloudProvider) -> None:
    full = CloudSettings(provider=provider, cluster_id="c", cluster_cidr="10.244.0.0/16")
    assert names(full) == ["cloud-node", "cloud-node-lifecycle", "route", "service", "cloud-garbage-sweep"]
    assert "route" not in names(dataclasses.replace(full, cluster_cidr=""))
    assert "route" not in names(dataclasses.replace(full, configure_cloud_routes=False))
    assert names(full, "*,-service") == ["cloud-node", "cloud-node-lifecycle", "route", "cloud-garbage-sweep"]
    bare = CloudSettings(provider=CloudProvider(name="bare"), cluster_id="c")
    assert names(bare) == []


def test_local_state_lives_under_the_data_dir(tmp_path: Path) -> None:
    provider, config = open_provider("local", None, data_dir=tmp_path)
    assert provider.name == "local" and config.cluster_id == "kubernetes"
    assert config.options("local")["stateFile"] == str(tmp_path / "cloud" / "local.db")
    cfg = tmp_path / "cloud.yaml"
    cfg.write_text("clusterID: prod\nlocal: {stateFile: " + str(tmp_path / "x.db") + "}\n")
    _, config = open_provider("local", cfg, data_dir=tmp_path)
    assert config.cluster_id == "prod" and config.options("local")["stateFile"] == str(tmp_path / "x.db")
    cfg.write_text("clusterID: [1]\n")
    with pytest.raises(InvalidConfiguration):
        open_provider("local", cfg)


def test_the_manager_elects_on_the_cloud_controller_manager_lease(provider: CloudProvider) -> None:
    settings = CloudSettings(provider=provider, cluster_id="c", cluster_cidr="10.244.0.0/16")
    manager = build_manager(cast(Client, object()), settings)
    assert manager._le.lease_name == LEASE_NAME == "cloud-controller-manager"
    assert manager._le.namespace == "kube-system"
    assert manager._component == "cloud-controller-manager"
