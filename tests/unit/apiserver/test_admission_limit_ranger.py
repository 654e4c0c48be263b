"""LimitRanger's pure parts: item defaulting, container defaults, constraint messages."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.apiserver.admission.limit_ranger import (
    LIMIT_RANGER_ANNOTATION,
    aggregate,
    defaulted_items,
    merge_pod_defaults,
    validate_pod,
    validate_pvc,
)


def _lr(*items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "lr"}, "spec": {"limits": list(items)}}


def _pod(*containers: dict[str, Any], init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = init
    return {"metadata": {"name": "p"}, "spec": spec}


def _ctr(
    name: str = "c", requests: dict[str, str] | None = None, limits: dict[str, str] | None = None
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": "i", "resources": resources}


def test_container_items_are_defaulted_like_set_defaults_limit_range_item() -> None:
    items = defaulted_items(_lr({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}))
    assert items[0]["default"] == {"cpu": "2"}
    assert items[0]["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}
    explicit = defaulted_items(
        _lr({"type": "Container", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "100m"}})
    )
    assert explicit[0]["defaultRequest"] == {"cpu": "100m"}
    pod_items = defaulted_items(_lr({"type": "Pod", "max": {"cpu": "2"}}))
    assert "default" not in pod_items[0]


def test_defaults_fill_only_what_is_missing_and_are_annotated() -> None:
    items = defaulted_items(
        _lr(
            {
                "type": "Container",
                "default": {"cpu": "1", "memory": "512Mi"},
                "defaultRequest": {"cpu": "250m"},
            }
        )
    )
    pod = _pod(_ctr("web", limits={"cpu": "2"}), _ctr("side"), init=[_ctr("setup", requests={"cpu": "1"})])
    merge_pod_defaults(pod, items)
    web, side = pod["spec"]["containers"]
    assert web["resources"] == {
        "limits": {"cpu": "2", "memory": "512Mi"},
        "requests": {"cpu": "250m", "memory": "512Mi"},
    }
    assert side["resources"] == {
        "limits": {"cpu": "1", "memory": "512Mi"},
        "requests": {"cpu": "250m", "memory": "512Mi"},
    }
    setup = pod["spec"]["initContainers"][0]
    assert setup["resources"]["requests"] == {"cpu": "1", "memory": "512Mi"}
    assert pod["metadata"]["annotations"][LIMIT_RANGER_ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container web; memory limit for container web; "
        "cpu, memory request for container side; cpu, memory limit for container side; "
        "memory request for init container setup; cpu, memory limit for init container setup"
    )


def test_a_limit_range_without_defaults_changes_nothing() -> None:
    pod = _pod(_ctr())
    before = repr(pod)
    merge_pod_defaults(pod, defaulted_items(_lr({"type": "Pod", "max": {"cpu": "2"}})))
    assert repr(pod) == before


@pytest.mark.parametrize(
    ("item", "container", "problems"),
    [
        (
            {"type": "Container", "max": {"cpu": "1"}},
            _ctr(requests={"cpu": "500m"}, limits={"cpu": "2"}),
            ["maximum cpu usage per Container is 1, but limit is 2"],
        ),
        (
            {"type": "Container", "max": {"cpu": "1"}},
            _ctr(requests={"cpu": "500m"}),
            ["maximum cpu usage per Container is 1.  No limit is specified"],
        ),
        (
            {"type": "Container", "min": {"memory": "100Mi"}},
            _ctr(requests={"memory": "50Mi"}, limits={"memory": "50Mi"}),
            ["minimum memory usage per Container is 100Mi, but request is 50Mi"],
        ),
        (
            {"type": "Container", "min": {"memory": "100Mi"}},
            _ctr(),
            ["minimum memory usage per Container is 100Mi.  No request is specified"],
        ),
        (
            {"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
            _ctr(requests={"cpu": "100m"}, limits={"cpu": "500m"}),
            ["cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000"],
        ),
        (
            {"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
            _ctr(limits={"cpu": "500m"}),
            [
                "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"
            ],
        ),
        (
            {"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}},
            _ctr(requests={"cpu": "200m"}, limits={"cpu": "1000m"}),
            [],
        ),
    ],
)
def test_container_constraints_use_upstreams_words(
    item: dict[str, Any], container: dict[str, Any], problems: list[str]
) -> None:
    assert validate_pod([item], _pod(container)) == problems


def test_pod_constraints_add_up_containers() -> None:
    item = {"type": "Pod", "max": {"cpu": "1"}}
    pod = _pod(_ctr("a", limits={"cpu": "600m"}), _ctr("b", limits={"cpu": "600m"}))
    assert validate_pod([item], pod) == ["maximum cpu usage per Pod is 1, but limit is 1200m"]
    # A classic init container runs alone: the pod needs the larger of it and the sum.
    init = _pod(_ctr("a", limits={"cpu": "300m"}), init=[_ctr("i", limits={"cpu": "900m"})])
    assert validate_pod([item], init) == []


def test_several_problems_are_aggregated() -> None:
    items = [{"type": "Container", "max": {"cpu": "1", "memory": "1Gi"}}]
    pod = _pod(_ctr(limits={"cpu": "2", "memory": "2Gi"}))
    assert aggregate(validate_pod(items, pod)) == (
        "[maximum cpu usage per Container is 1, but limit is 2, "
        "maximum memory usage per Container is 1Gi, but limit is 2Gi]"
    )
    assert aggregate(["same", "same"]) == "same"


def test_claims_are_held_to_storage_bounds_and_only_changes_are_checked() -> None:
    items = [{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]

    def pvc(size: str) -> dict[str, Any]:
        return {"spec": {"resources": {"requests": {"storage": size}}}}

    assert validate_pvc(items, pvc("20Gi"), None) == [
        "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
    ]
    assert validate_pvc(items, pvc("500Mi"), None) == [
        "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
    ]
    assert validate_pvc(items, pvc("20Gi"), pvc("20Gi")) == []  # stored before the LimitRange
    assert validate_pvc(items, pvc("5Gi"), None) == []
