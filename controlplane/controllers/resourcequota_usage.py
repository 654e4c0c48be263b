"""What the ResourceQuota controller writes into a quota's status (upstream syncResourceQuota):
`status.hard` mirrors `spec.hard`, `status.used` the usage measured now. What each object charges
is controlplane.api.quota, shared with the admission plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.api.quantity import Quantity, ResourceList, parse_quantity
from controlplane.api.quota import hard_limits

__all__ = ["quota_status"]


def _parse_list(raw: Any) -> ResourceList | None:
    if not isinstance(raw, Mapping):
        return None
    out: ResourceList = {}
    for name, value in raw.items():
        try:
            out[str(name)] = parse_quantity(value)
        except ValueError:
            continue
    return out


def _render(resources: Mapping[str, Quantity]) -> dict[str, str]:
    return {name: str(resources[name]) for name in sorted(resources)}


def quota_status(quota: Mapping[str, Any], usage: Mapping[str, Quantity]) -> tuple[dict[str, Any], bool]:
    """(the status the quota should have, whether it differs from the current one). Usage not
    measured this time keeps its previous value; only hard resources are reported."""
    hard = hard_limits(quota)
    status = quota.get("status") or {}
    old_hard = _parse_list(status.get("hard"))
    old_used = _parse_list(status.get("used"))
    used: ResourceList = dict(old_used or {})
    used.update(usage)
    used = {name: q for name, q in used.items() if name in hard}
    dirty = old_hard is None or old_used is None or old_hard != hard or old_used != used
    return {"hard": _render(hard), "used": _render(used)}, dirty
