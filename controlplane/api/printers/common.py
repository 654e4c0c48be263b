"""What every built-in printer shares: column and printer records, and upstream's formatting helpers.

A `Printer` is one resource's column definitions plus a pure function from a decoded object
(and the current time) to its row's cells. Upstream's API server always prints "wide", so a
row holds a cell for every column, priority 0 or not. The helpers mirror the Go ones the
printers call: `translateTimestampSince`, `labels.FormatLabels`, `metav1.FormatLabelSelector`,
`layoutContainerCells` and friends. Objects are JSON as stored, so every accessor tolerates
missing or mistyped fields the way Go's zero values would.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controlplane.api import schemas
from controlplane.api.durations import human_duration

__all__ = [
    "AGE",
    "CONTAINERS",
    "IMAGES",
    "NAME",
    "Column",
    "Doc",
    "Printer",
    "RowFn",
    "age",
    "as_bool",
    "as_int",
    "as_list",
    "as_map",
    "as_str",
    "aware",
    "container_cells",
    "dig",
    "format_label_selector",
    "format_labels",
    "is_rfc3339",
    "list_with_more",
    "load_balancer_ingress",
    "maps",
    "name",
    "parse_time",
    "quantity",
    "selector_string",
    "since",
]

RowFn = Callable[[Mapping[str, Any], datetime], list[Any]]


@dataclass(frozen=True)
class Doc:
    """A column description taken from the upstream OpenAPI docs, as upstream's `SwaggerDoc()`.

    `definition` is the name after `io.k8s.api.` (or `io.k8s.apimachinery.pkg.apis.` for meta).
    """

    definition: str
    field: str

    def text(self) -> str:
        prefix = "io.k8s.apimachinery.pkg.apis." if self.definition.startswith("meta.") else "io.k8s.api."
        try:
            prop = schemas.definitions()[prefix + self.definition]["properties"][self.field]
            description = prop.get("description", "")
        except (KeyError, TypeError, AttributeError, OSError, ValueError):
            # Descriptions are decoration: a schema set without the field must not break tables.
            return ""
        return description if isinstance(description, str) else ""


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "string"
    description: str | Doc = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        description = self.description if isinstance(self.description, str) else self.description.text()
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": description,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class Printer:
    columns: tuple[Column, ...]
    row: RowFn
    # Row conditions (`Completed`) for a finished object, as upstream sets for pods.
    conditions: Callable[[Mapping[str, Any]], list[dict[str, Any]]] | None = field(default=None)


NAME = Column("Name", "string", Doc("meta.v1.ObjectMeta", "name"), format="name")
AGE = Column("Age", "string", Doc("meta.v1.ObjectMeta", "creationTimestamp"))
CONTAINERS = Column("Containers", description="Names of each container in the template.", priority=1)
IMAGES = Column("Images", description="Images referenced by each container in the template.", priority=1)


def dig(obj: Any, *path: str | int) -> Any:
    """obj[path[0]][path[1]]..., or None where any step is missing or of the wrong shape."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(obj, list) or not -len(obj) <= key < len(obj):
                return None
            obj = obj[key]
        elif isinstance(obj, Mapping):
            obj = obj.get(key)
        else:
            return None
    return obj


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return 0


def as_bool(value: Any) -> bool:
    return value is True


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def maps(value: Any) -> list[Mapping[str, Any]]:
    """The mapping items of a JSON list (anything else is ignored)."""
    return [item for item in as_list(value) if isinstance(item, Mapping)]


def name(obj: Mapping[str, Any]) -> str:
    return as_str(dig(obj, "metadata", "name"))


_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$",
)
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def is_rfc3339(value: str) -> bool:
    return _RFC3339.match(value) is not None


def aware(moment: datetime) -> datetime:
    """A naive datetime is taken to be UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 `metav1.Time` / `MicroTime`; None for missing, unparsable or Go's zero time."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value)
    if match is None:
        return None
    date, clock, fraction, zone = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    offset = "+00:00" if zone in ("Z", "z") else zone
    try:
        parsed = datetime.fromisoformat(f"{date}T{clock}.{micros}{offset}")
    except ValueError:
        return None
    return None if parsed == _ZERO_TIME else parsed


def since(value: Any, now: datetime) -> str:
    """`translateTimestampSince`: the human age of a timestamp, `<unknown>` when unset."""
    at = value if isinstance(value, datetime) else parse_time(value)
    if at is None:
        return "<unknown>"
    return human_duration(aware(now) - aware(at))


def age(obj: Mapping[str, Any], now: datetime) -> str:
    return since(dig(obj, "metadata", "creationTimestamp"), now)


def _label_value(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def format_labels(labels: Any) -> str:
    """`labels.FormatLabels`: sorted `k=v` pairs joined by commas, `<none>` when empty."""
    pairs = [f"{k}={_label_value(v)}" for k, v in sorted(as_map(labels).items())]
    return ",".join(pairs) if pairs else "<none>"


_SET_OPERATORS = {"In": "in", "NotIn": "notin"}


def selector_string(selector: Any) -> str | None:
    """`metav1.LabelSelectorAsSelector(s).String()`; None when the selector is invalid.

    A missing selector selects nothing and an empty one everything; both print as "".
    """
    if not isinstance(selector, Mapping):
        return ""
    requirements: list[tuple[str, str]] = [
        (str(k), f"{k}={_label_value(v)}") for k, v in as_map(selector.get("matchLabels")).items()
    ]
    for expr in as_list(selector.get("matchExpressions")):
        if not isinstance(expr, Mapping):
            return None
        key, op = as_str(expr.get("key")), as_str(expr.get("operator"))
        values = sorted(_label_value(v) for v in as_list(expr.get("values")))
        if not key:
            return None
        if op in _SET_OPERATORS:
            if not values:
                return None
            requirements.append((key, f"{key} {_SET_OPERATORS[op]} ({','.join(values)})"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                return None
            requirements.append((key, key if op == "Exists" else f"!{key}"))
        else:
            return None
    requirements.sort(key=lambda r: r[0])
    return ",".join(text for _, text in requirements)


def format_label_selector(selector: Any) -> str:
    """`metav1.FormatLabelSelector`: `<none>` when it selects everything, `<error>` when invalid."""
    text = selector_string(selector)
    if text is None:
        return "<error>"
    return text or "<none>"


def container_cells(containers: Any) -> tuple[str, str]:
    """`layoutContainerCells`: container names and images, each comma-joined."""
    items = maps(containers)
    return ",".join(as_str(c.get("name")) for c in items), ",".join(as_str(c.get("image")) for c in items)


def quantity(value: Any) -> str:
    """A `resource.Quantity` as stored; a missing one is Go's zero quantity, "0"."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return "0"


def load_balancer_ingress(status: Any) -> str:
    """`loadBalancerStatusStringer` at wide width: sorted unique IPs (or hostnames)."""
    found: set[str] = set()
    for entry in maps(dig(status, "ingress")):
        ip, hostname = as_str(entry.get("ip")), as_str(entry.get("hostname"))
        if ip or hostname:
            found.add(ip or hostname)
    return ",".join(sorted(found))


def list_with_more(items: list[str], more: bool, count: int, limit: int) -> str:
    """`listWithMoreString`: at most `limit` items then "+ N more...", `<unset>` when empty."""
    text = ",".join(items)
    if more:
        return f"{text} + {count - limit} more..."
    return text or "<unset>"
