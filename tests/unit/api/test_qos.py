"""status.qosClass as upstream computes it."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api.qos import pod_qos_class


def pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {"spec": {"containers": list(containers), "initContainers": list(init)}}


def ctr(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": "c", "resources": {"requests": requests or {}, "limits": limits or {}}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (pod(ctr()), "BestEffort"),
        (pod(ctr({"ephemeral-storage": "1Gi"})), "BestEffort"),  # only cpu and memory count
        (pod(ctr({"cpu": "0"})), "BestEffort"),  # zero is no request
        (pod(ctr({"cpu": "100m"})), "Burstable"),
        (pod(ctr({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})), "Guaranteed"),
        (pod(ctr({"cpu": "1000m", "memory": "1024Mi"}, {"cpu": "1", "memory": "1Gi"})), "Guaranteed"),
        (pod(ctr({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})), "Burstable"),
        (pod(ctr({}, {"cpu": "1"})), "Burstable"),  # memory not limited
        (
            pod(
                ctr({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}),
                ctr({"cpu": "1"}, {"cpu": "1"}),
            ),
            "Burstable",  # every container must limit both
        ),
        (
            pod(
                ctr({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}),
                init=(ctr({"cpu": "2", "memory": "1Gi"}, {"cpu": "2", "memory": "1Gi"}),),
            ),
            "Guaranteed",
        ),
    ],
)
def test_qos_class(spec: dict[str, Any], expected: str) -> None:
    assert pod_qos_class(spec) == expected
