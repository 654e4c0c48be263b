"""Apply `default`s (`pkg/apiserver/schema/defaulting/algorithm.go`).

A default fills a missing field, or a null one when the field is not nullable; defaults are
applied top-down, so a defaulted object receives its own nested defaults. Values under
`additionalProperties` and array items that are null (and not nullable) take the item default.
"""

from __future__ import annotations

import copy
from typing import Any

from controlplane.api.crd import nodes

__all__ = ["default"]

Schema = dict[str, Any]


def _non_nullable_null(value: Any, s: Schema | None) -> bool:
    return value is None and s is not None and not s.get("nullable")


def default(x: Any, s: Schema | None) -> None:
    if s is None:
        return
    if isinstance(x, dict):
        props = nodes.properties(s)
        for key, prop in props.items():
            if not isinstance(prop, dict) or "default" not in prop:
                continue
            if key not in x or _non_nullable_null(x[key], prop):
                x[key] = copy.deepcopy(prop["default"])
        _, extra = nodes.additional(s)
        for key, value in list(x.items()):
            if key in props:
                default(value, props[key] if isinstance(props[key], dict) else None)
            elif extra is not None:
                if _non_nullable_null(value, extra) and "default" in extra:
                    x[key] = copy.deepcopy(extra["default"])
                default(x[key], extra)
    elif isinstance(x, list):
        item_schema = nodes.items(s)
        if item_schema is None:
            return
        for i, value in enumerate(x):
            if _non_nullable_null(value, item_schema) and "default" in item_schema:
                x[i] = copy.deepcopy(item_schema["default"])
            default(x[i], item_schema)
