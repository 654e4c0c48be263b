"""The root CA certificate publisher: `kube-root-ca.crt` in every namespace, as upstream's
kube-controller-manager keeps it, against a real server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.rootcacertpublisher import (
    DESCRIPTION,
    DESCRIPTION_ANNOTATION,
    ROOT_CA_CONFIGMAP,
    RootCACertPublisher,
)
from controlplane.controllers.runtime import ControllerConfig, R
from tests.integration.conftest import ServerProcess
from tests.integration.controller_harness import client_for, eventually, running

pytestmark = pytest.mark.timeout(120)


async def _namespace(client: Client) -> str:
    name = f"rootca-{uuid.uuid4().hex[:6]}"
    await client.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def _published(client: Client, namespace: str) -> dict[str, Any] | None:
    try:
        return await client.get(R.CONFIGMAPS, ROOT_CA_CONFIGMAP, namespace)
    except errors.NotFound:
        return None


async def test_every_namespace_gets_the_ca_and_keeps_it(bare_server: ServerProcess) -> None:
    ca = bare_server.ca.read_text()
    config = ControllerConfig(extra={"root_ca_file": str(bare_server.ca)})
    async with running(bare_server, [RootCACertPublisher], config=config) as (client, _):
        ns = await _namespace(client)
        first = await eventually(lambda: _published(client, ns))
        assert first["data"] == {"ca.crt": ca}
        assert first["metadata"]["annotations"] == {DESCRIPTION_ANNOTATION: DESCRIPTION}
        # Namespaces made before it started are covered too: kube-system, default.
        for existing in ("default", "kube-system", "kube-public"):
            assert await eventually(lambda n=existing: _published(client, n))

        # Someone changes the data: it is put back, and their other annotations stay.
        tampered = dict(first)
        tampered["data"] = {"ca.crt": "not a CA", "extra": "x"}
        tampered["metadata"] = {**first["metadata"], "annotations": {"team": "mine"}}
        await client.request("PUT", R.CONFIGMAPS.url(ns, ROOT_CA_CONFIGMAP), body=tampered)

        async def restored() -> dict[str, Any] | None:
            cm = await _published(client, ns)
            return cm if cm is not None and cm["data"] == {"ca.crt": ca} else None

        fixed = await eventually(restored)
        assert fixed["metadata"]["annotations"] == {"team": "mine", DESCRIPTION_ANNOTATION: DESCRIPTION}

        # Deleted: made again.
        await client.delete(R.CONFIGMAPS, ROOT_CA_CONFIGMAP, ns)

        async def recreated() -> dict[str, Any] | None:
            cm = await _published(client, ns)
            return cm if cm is not None and cm["metadata"]["uid"] != first["metadata"]["uid"] else None

        assert (await eventually(recreated))["data"] == {"ca.crt": ca}


async def test_without_a_root_ca_file_the_kubeconfigs_ca_is_published(bare_server: ServerProcess) -> None:
    # Upstream falls back to the CA of the controller manager's own client configuration.
    async with running(bare_server, [RootCACertPublisher]) as (client, _):
        ns = await _namespace(client)
        published = await eventually(lambda: _published(client, ns))
        assert published["data"] == {"ca.crt": bare_server.ca.read_text()}


async def test_the_full_server_publishes_it_under_its_own_identity(server: ServerProcess) -> None:
    # The in-process controller manager runs as system:kube-controller-manager, bound to
    # system:controller:root-ca-cert-publisher: RBAC must let it create the ConfigMap.
    async with client_for(server) as client:
        ns = await _namespace(client)
        published = await eventually(lambda: _published(client, ns))
        assert published["data"] == {"ca.crt": server.ca.read_text()}
        assert published["metadata"]["managedFields"][0]["manager"].startswith("pinnace-controller-manager")
