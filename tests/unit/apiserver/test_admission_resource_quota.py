"""ResourceQuota admission: how a request is checked against live usage (what objects cost is
controlplane.api.quota, tested in tests/unit/api/test_quota.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.api.quantity import ResourceList, parse_quantity
from controlplane.api.quota import PodEvaluator, ServiceEvaluator
from controlplane.api.resources import default_registry
from controlplane.apiserver.admission import Attributes
from controlplane.apiserver.admission.resource_quota import check_request

NOW = datetime(2026, 1, 1, tzinfo=UTC)
REGISTRY = default_registry()


def _attrs(plural: str, operation: str = "CREATE", group: str = "") -> Attributes:
    info = REGISTRY.get(group, "v1", plural)
    assert info is not None
    return Attributes(info, operation, "ns", "x")  # type: ignore[arg-type]


def _quota(name: str, hard: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"hard": hard, **spec}}


def _pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "x"}, "spec": {"containers": list(containers), **spec}}


def _ctr(
    name: str = "c", requests: dict[str, str] | None = None, limits: dict[str, str] | None = None
) -> dict[str, Any]:
    return {"name": name, "resources": {"requests": requests or {}, "limits": limits or {}}}


def _used(**values: str) -> ResourceList:
    return {k.replace("_", "."): parse_quantity(v) for k, v in values.items()}


def test_exceeded_quota_message() -> None:
    quota = _quota("q", {"pods": "2", "requests.cpu": "1"})
    with pytest.raises(errors.Forbidden) as info:
        check_request(
            _attrs("pods"),
            PodEvaluator(),
            [quota],
            {"q": _used(pods="2", requests_cpu="0")},
            _pod(_ctr("c", {"cpu": "1"})),
            None,
            NOW,
        )
    assert (
        info.value.message
        == 'pods "x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2'
    )
    assert info.value.code == 403


def test_several_resources_exceeded_at_once() -> None:
    quota = _quota("compute", {"requests.cpu": "1", "requests.memory": "1Gi"})
    pod = _pod(_ctr("c", {"cpu": "600m", "memory": "800Mi"}))
    used = {"compute": _used(requests_cpu="500m", requests_memory="512Mi")}
    with pytest.raises(errors.Forbidden) as info:
        check_request(_attrs("pods"), PodEvaluator(), [quota], used, pod, None, NOW)
    assert info.value.message.endswith(
        "exceeded quota: compute, requested: requests.cpu=600m,requests.memory=800Mi, "
        "used: requests.cpu=500m,requests.memory=512Mi, limited: requests.cpu=1,requests.memory=1Gi"
    )


def test_compute_quota_requires_every_container_to_state_it() -> None:
    quota = _quota("q", {"limits.cpu": "4", "requests.memory": "1Gi", "pods": "10"})
    pod = _pod(_ctr("a", {"memory": "1Mi"}, {"cpu": "1"}), _ctr("b"), _ctr("c", {"memory": "1Mi"}))
    with pytest.raises(errors.Forbidden) as info:
        check_request(_attrs("pods"), PodEvaluator(), [quota], {}, pod, None, NOW)
    assert info.value.message == (
        'pods "x" is forbidden: failed quota: q: must specify limits.cpu for: b,c; requests.memory for: b'
    )


def test_a_request_within_quota_returns_the_new_usage() -> None:
    quota = _quota("q", {"pods": "2", "count/pods": "5", "secrets": "3"})
    charged = check_request(
        _attrs("pods"),
        PodEvaluator(),
        [quota],
        {"q": _used(pods="1", **{"count/pods": "1"})},
        _pod(_ctr()),
        None,
        NOW,
    )
    assert {k: str(v) for k, v in charged["q"].items()} == {"pods": "2", "count/pods": "2"}


def test_updates_charge_only_the_increase() -> None:
    quota = _quota("q", {"services.nodeports": "2", "services": "5"})
    old = {"spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    new = {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}}
    used = {"q": _used(services="2", services_nodeports="1")}
    charged = check_request(_attrs("services", "UPDATE"), ServiceEvaluator(), [quota], used, new, old, NOW)
    assert {k: str(v) for k, v in charged["q"].items()} == {"services.nodeports": "2"}
    grown = {"spec": {"type": "NodePort", "ports": [{"port": p} for p in (80, 81, 82)]}}
    with pytest.raises(
        errors.Forbidden, match=r"requested: services\.nodeports=2, used: services\.nodeports=1"
    ):
        check_request(_attrs("services", "UPDATE"), ServiceEvaluator(), [quota], used, grown, old, NOW)
    # Nothing grows: nothing is charged.
    assert check_request(_attrs("services", "UPDATE"), ServiceEvaluator(), [quota], used, old, old, NOW) == {}


def test_quotas_that_limit_nothing_of_the_request_are_skipped() -> None:
    quota = _quota("q", {"secrets": "0"})
    assert check_request(_attrs("pods"), PodEvaluator(), [quota], {}, _pod(_ctr()), None, NOW) == {}


def test_negative_usage_is_refused() -> None:
    quota = _quota("q", {"requests.cpu": "1"})
    with pytest.raises(
        errors.Forbidden, match=r"quota usage is negative for resource\(s\): cpu,requests\.cpu"
    ):
        check_request(_attrs("pods"), PodEvaluator(), [quota], {}, _pod(_ctr("c", {"cpu": "-1"})), None, NOW)


def test_only_quotas_whose_scopes_hold_the_object_are_charged() -> None:
    batch = _quota("batch", {"pods": "5"}, scopes=["Terminating"])
    service = _pod(_ctr())
    assert check_request(_attrs("pods"), PodEvaluator(), [batch], {}, service, None, NOW) == {}
    # An update that moves the object into the scope is charged in full, not by its delta.
    job = _pod(_ctr(), activeDeadlineSeconds=30)
    charged = check_request(
        _attrs("pods", "UPDATE"), PodEvaluator(), [batch], {"batch": _used(pods="1")}, job, service, NOW
    )
    assert {k: str(v) for k, v in charged["batch"].items()} == {"pods": "2"}
