"""Server-side `meta.k8s.io/v1 Table` columns and cells, as pure functions of an object.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints exactly the columns
the server defines, hiding priority > 0 ones unless `-o wide`. Three sources of columns, as
upstream:

- built-in resources with a printer (`controlplane.api.printers`, after upstream
  `pkg/printers/internalversion/printers.go`); rows always carry every column, since the API
  server prints wide;
- custom resources: NAME and the version's `additionalPrinterColumns` evaluated by JSONPath
  (upstream apiextensions `tableconvertor`); a version without columns is served one `Age`
  column on `.metadata.creationTimestamp`, as upstream's `serveDefaultColumnsIfEmpty`;
- anything else: upstream's `DefaultTableConvertor`, NAME and "Created At" (RFC 3339, UTC).

The caller passes `printer_columns` (possibly empty) for a custom resource and None otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from controlplane.api.jsonpath import JSONPath, JSONPathError, compile_path, go_text
from controlplane.api.printers import PRINTERS
from controlplane.api.printers.common import AGE, NAME, Column, Doc, dig, is_rfc3339, name, parse_time, since

__all__ = ["cells", "columns", "crd_columns", "has_printer", "row_conditions"]

_CREATED_AT = Column("Created At", "date", Doc("meta.v1.ObjectMeta", "creationTimestamp"))
_DEFAULT_COLUMNS = (NAME, _CREATED_AT)
_DEFAULT_CRD_COLUMNS: tuple[dict[str, Any], ...] = (
    {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": AGE.description,
    },
)


def has_printer(group: str, plural: str) -> bool:
    """Whether a built-in printer (rather than the default table) serves this resource."""
    return (group, plural) in PRINTERS


def crd_columns(printer_columns: list[dict[str, Any]]) -> list[tuple[dict[str, Any], JSONPath]]:
    """The served printer columns with their compiled paths.

    An empty list is served as one Age column. As upstream, a column whose path does not parse
    ends the list there (upstream logs it and keeps the columns before it).
    """
    served = printer_columns or list(_DEFAULT_CRD_COLUMNS)
    out: list[tuple[dict[str, Any], JSONPath]] = []
    for column in served:
        try:
            path = compile_path(str(column.get("jsonPath", "")))
        except JSONPathError:
            break
        out.append((column, path))
    return out


def _crd_definition(column: Mapping[str, Any]) -> dict[str, Any]:
    description = column.get("description") or (
        f"Custom resource definition column (in JSONPath format): {column.get('jsonPath', '')}"
    )
    if isinstance(description, Doc):
        description = description.text()
    return {
        "name": str(column.get("name", "")),
        "type": str(column.get("type", "")),
        "format": str(column.get("format", "") or ""),
        "description": str(description),
        "priority": int(column.get("priority", 0) or 0),
    }


def columns(
    group: str, plural: str, *, printer_columns: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The Table `columnDefinitions` for a resource: [{name, type, format, description, priority}]."""
    if printer_columns is not None:
        return [NAME.definition()] + [_crd_definition(c) for c, _ in crd_columns(printer_columns)]
    printer = PRINTERS.get((group, plural))
    defined = printer.columns if printer is not None else _DEFAULT_COLUMNS
    return [c.definition() for c in defined]


def _crd_cell(column_type: str, value: Any, now: datetime) -> Any:
    """Upstream `cellForJSONValue`, plus `PrintResults` text for string columns."""
    if value is None:
        return None
    if column_type == "string":
        return go_text(value)
    if column_type == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return int(value) if math.isfinite(value) else None
    if column_type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        if not isinstance(value, str):
            return None
        if value in ("", "null"):
            return "<unknown>"
        if not is_rfc3339(value):
            return "<invalid>"
        return since(value, now)  # Go's zero time parses fine and prints as <unknown>
    return None


def _default_created_at(obj: Mapping[str, Any]) -> str:
    """`creationTimestamp.UTC().Format(time.RFC3339)`; Go formats an unset one as year one."""
    at = parse_time(dig(obj, "metadata", "creationTimestamp"))
    at = datetime(1, 1, 1, tzinfo=UTC) if at is None else at.astimezone(UTC)
    return f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:{at.second:02d}Z"


def cells(
    group: str,
    plural: str,
    obj: Mapping[str, Any],
    *,
    now: datetime,
    printer_columns: list[dict[str, Any]] | None = None,
) -> list[Any]:
    """One Table row's cells for `obj`, in the order of `columns(...)`."""
    if printer_columns is not None:
        row: list[Any] = [name(obj)]
        for column, path in crd_columns(printer_columns):
            try:
                results = path.find(obj)
            except JSONPathError:
                results = []
            # Upstream only supports simple paths and shows the first match.
            value = results[0] if results else None
            row.append(_crd_cell(str(column.get("type", "")), value, now))
        return row
    printer = PRINTERS.get((group, plural))
    if printer is None:
        return [name(obj), _default_created_at(obj)]
    return printer.row(obj, now)


def row_conditions(group: str, plural: str, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Table row `conditions` (upstream marks finished pods `Completed`); empty for most kinds."""
    printer = PRINTERS.get((group, plural))
    if printer is None or printer.conditions is None:
        return []
    return printer.conditions(obj)
