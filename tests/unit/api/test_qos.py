"""status.qosClass as upstream computes it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api import qos
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
    qos._MEMO.clear()
    assert pod_qos_class(spec) == expected
    assert pod_qos_class(spec) == expected  # remembered


_quantities = st.sampled_from(["0", "1", "100m", "0.1", "1Gi", "1024Mi", "-1", "x", ""])
_resources = st.dictionaries(st.sampled_from(["cpu", "memory", "nvidia.com/gpu"]), _quantities, max_size=3)


@settings(deadline=None, max_examples=300)
@given(
    containers=st.lists(st.tuples(_resources, _resources), min_size=1, max_size=3),
    init=st.lists(st.tuples(_resources, _resources), max_size=2),
)
def test_the_remembered_class_is_the_computed_one(
    containers: list[tuple[dict[str, str], dict[str, str]]], init: list[tuple[dict[str, str], dict[str, str]]]
) -> None:
    spec = pod(*(ctr(r, lim) for r, lim in containers), init=tuple(ctr(r, lim) for r, lim in init))
    computed = qos._qos_class([*spec["spec"]["containers"], *spec["spec"]["initContainers"]])
    assert pod_qos_class(spec) == computed
    assert pod_qos_class(spec) == computed


def test_numbers_are_not_remembered_as_their_strings() -> None:
    """1, 1.0 and True are one dict key; only string quantities are remembered."""
    qos._MEMO.clear()
    as_number = pod(ctr({"cpu": 1, "memory": 1}, {"cpu": 1, "memory": 1}))  # type: ignore[dict-item]
    as_bool = pod(ctr({"cpu": True, "memory": True}, {"cpu": True, "memory": True}))  # type: ignore[dict-item]
    assert pod_qos_class(as_number) == "Guaranteed"
    assert pod_qos_class(as_bool) == qos._qos_class(as_bool["spec"]["containers"])
    assert not qos._MEMO
