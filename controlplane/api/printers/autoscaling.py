"""Printer for `autoscaling` horizontal pod autoscalers (upstream `printHorizontalPodAutoscaler`).

Targets are formatted from `autoscaling/v2` metrics; an `autoscaling/v1` object's CPU target is
read as the one Resource metric the v1 -> internal conversion produces.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.api.printers.common import (
    AGE,
    NAME,
    Column,
    Doc,
    Printer,
    age,
    as_int,
    as_map,
    as_str,
    dig,
    maps,
    name,
    quantity,
)

__all__ = ["PRINTERS", "format_hpa_metrics"]

_UNKNOWN = "<unknown>"


def _v1_metrics(obj: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    spec, status = as_map(obj.get("spec")), as_map(obj.get("status"))
    target = spec.get("targetCPUUtilizationPercentage")
    if target is None:
        return [], []
    specs: list[Mapping[str, Any]] = [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"averageUtilization": target}}},
    ]
    current = status.get("currentCPUUtilizationPercentage")
    statuses: list[Mapping[str, Any]] = []
    if current is not None:
        statuses.append(
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}}
        )
    return specs, statuses


def _status_at(statuses: list[Mapping[str, Any]], i: int, field: str) -> Mapping[str, Any] | None:
    if i < len(statuses) and isinstance(statuses[i].get(field), Mapping):
        value: Mapping[str, Any] = statuses[i][field]
        return value
    return None


def _value_metric(spec: Mapping[str, Any], current: Mapping[str, Any] | None) -> str:
    target = as_map(spec.get("target"))
    if target.get("averageValue") is not None:
        value = dig(current, "current", "averageValue")
        shown = quantity(value) if current is not None and value is not None else _UNKNOWN
        return f"{shown}/{quantity(target.get('averageValue'))} (avg)"
    shown = quantity(dig(current, "current", "value")) if current is not None else _UNKNOWN
    return f"{shown}/{quantity(target.get('value'))}"


def _resource_metric(spec: Mapping[str, Any], current: Mapping[str, Any] | None) -> str:
    resource_name = as_str(spec.get("name"))
    target = as_map(spec.get("target"))
    if target.get("averageValue") is not None:
        shown = quantity(dig(current, "current", "averageValue")) if current is not None else _UNKNOWN
        return f"{resource_name}: {shown}/{quantity(target.get('averageValue'))}"
    utilization = dig(current, "current", "averageUtilization")
    shown = f"{as_int(utilization)}%" if current is not None and utilization is not None else _UNKNOWN
    wanted = target.get("averageUtilization")
    return f"{resource_name}: {shown}/{'<auto>' if wanted is None else f'{as_int(wanted)}%'}"


def format_hpa_metrics(specs: list[Mapping[str, Any]], statuses: list[Mapping[str, Any]]) -> str:
    """`formatHPAMetrics`: at most two targets, then "+ N more..."."""
    if not specs:
        return "<none>"
    listed: list[str] = []
    for i, spec in enumerate(specs):
        kind = spec.get("type")
        if kind == "External":
            listed.append(_value_metric(as_map(dig(spec, "external")), _status_at(statuses, i, "external")))
        elif kind == "Pods":
            current = _status_at(statuses, i, "pods")
            shown = quantity(dig(current, "current", "averageValue")) if current is not None else _UNKNOWN
            listed.append(f"{shown}/{quantity(dig(spec, 'pods', 'target', 'averageValue'))}")
        elif kind == "Object":
            listed.append(_value_metric(as_map(dig(spec, "object")), _status_at(statuses, i, "object")))
        elif kind == "Resource":
            listed.append(_resource_metric(as_map(spec.get("resource")), _status_at(statuses, i, "resource")))
        elif kind == "ContainerResource":
            listed.append(
                _resource_metric(
                    as_map(spec.get("containerResource")),
                    _status_at(statuses, i, "containerResource"),
                ),
            )
        else:
            listed.append("<unknown type>")
    limit = 2
    if len(listed) > limit:
        return f"{', '.join(listed[:limit])} + {len(listed) - limit} more..."
    return ", ".join(listed)


def _hpa_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = as_map(obj.get("spec")), as_map(obj.get("status"))
    if "metrics" in spec or "targetCPUUtilizationPercentage" not in spec:
        specs, statuses = maps(spec.get("metrics")), maps(status.get("currentMetrics"))
    else:
        specs, statuses = _v1_metrics(obj)
    ref = as_map(spec.get("scaleTargetRef"))
    min_replicas = spec.get("minReplicas")
    return [
        name(obj),
        f"{as_str(ref.get('kind'))}/{as_str(ref.get('name'))}",
        format_hpa_metrics(specs, statuses),
        "<unset>" if min_replicas is None else str(as_int(min_replicas)),
        as_int(spec.get("maxReplicas")),
        as_int(status.get("currentReplicas")),
        age(obj, now),
    ]


PRINTERS = {
    ("autoscaling", "horizontalpodautoscalers"): Printer(
        (
            NAME,
            Column(
                "Reference", description=Doc("autoscaling.v2.HorizontalPodAutoscalerSpec", "scaleTargetRef")
            ),
            Column("Targets", description=Doc("autoscaling.v2.HorizontalPodAutoscalerSpec", "metrics")),
            Column("MinPods", description=Doc("autoscaling.v2.HorizontalPodAutoscalerSpec", "minReplicas")),
            Column("MaxPods", description=Doc("autoscaling.v2.HorizontalPodAutoscalerSpec", "maxReplicas")),
            Column(
                "Replicas", description=Doc("autoscaling.v2.HorizontalPodAutoscalerStatus", "currentReplicas")
            ),
            AGE,
        ),
        _hpa_row,
    ),
}
