"""Pod creation and deletion with upstream RealPodControl's events."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api import errors
from controlplane.controllers.pod_control import create_pod, delete_pod

Obj = dict[str, Any]
OWNER: Obj = {"metadata": {"name": "web", "namespace": "ns", "uid": "u"}}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        assert obj is OWNER
        self.events.append((type_, reason, message))


class Client:
    def __init__(self, failure: errors.StatusError | None = None) -> None:
        self.failure = failure

    async def create(self, rp: Any, obj: Obj, namespace: str | None = None) -> Obj:
        if self.failure is not None:
            raise self.failure
        return {**obj, "metadata": {**obj["metadata"], "name": "web-abcde"}}

    async def delete(self, rp: Any, name: str, namespace: str | None = None) -> Obj:
        if self.failure is not None:
            raise self.failure
        return {}


POD: Obj = {"metadata": {"generateName": "web-"}}


async def test_successes_are_recorded() -> None:
    recorder = Recorder()
    created = await create_pod(Client(), recorder, OWNER, POD, "ns")  # type: ignore[arg-type]
    await delete_pod(Client(), recorder, OWNER, "web-abcde", "ns")  # type: ignore[arg-type]
    assert created["metadata"]["name"] == "web-abcde"
    assert recorder.events == [
        ("Normal", "SuccessfulCreate", "Created pod: web-abcde"),
        ("Normal", "SuccessfulDelete", "Deleted pod: web-abcde"),
    ]


async def test_failures_are_recorded_and_raised() -> None:
    recorder = Recorder()
    client = Client(errors.Forbidden(message="quota exceeded"))
    with pytest.raises(errors.Forbidden):
        await create_pod(client, recorder, OWNER, POD, "ns")  # type: ignore[arg-type]
    with pytest.raises(errors.Forbidden):
        await delete_pod(client, recorder, OWNER, "p", "ns")  # type: ignore[arg-type]
    assert recorder.events == [
        ("Warning", "FailedCreate", "Error creating: quota exceeded"),
        ("Warning", "FailedDelete", "Error deleting: quota exceeded"),
    ]


async def test_terminating_namespace_and_gone_pods_raise_without_events() -> None:
    recorder = Recorder()
    terminating = errors.Forbidden(message="namespace ns is being terminated")
    terminating.causes.append(errors.Cause(reason="NamespaceTerminating", message=""))
    with pytest.raises(errors.Forbidden):
        await create_pod(Client(terminating), recorder, OWNER, POD, "ns")  # type: ignore[arg-type]
    with pytest.raises(errors.NotFound):
        await delete_pod(Client(errors.NotFound(message="gone")), recorder, OWNER, "p", "ns")  # type: ignore[arg-type]
    assert recorder.events == []
