"""Printer for `storage.k8s.io` storage classes (upstream `printStorageClass`)."""

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
    as_bool,
    as_map,
    as_str,
    dig,
    name,
)

__all__ = ["PRINTERS", "is_default_class"]

_DEFAULT_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def is_default_class(obj: Mapping[str, Any]) -> bool:
    annotations = as_map(dig(obj, "metadata", "annotations"))
    return any(annotations.get(key) == "true" for key in _DEFAULT_ANNOTATIONS)


def _storage_class_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    return [
        name(obj) + (" (default)" if is_default_class(obj) else ""),
        as_str(obj.get("provisioner")),
        as_str(obj.get("reclaimPolicy")) or "Delete",
        as_str(obj.get("volumeBindingMode")) or "Immediate",
        as_bool(obj.get("allowVolumeExpansion")),
        age(obj, now),
    ]


PRINTERS = {
    ("storage.k8s.io", "storageclasses"): Printer(
        (
            NAME,
            Column("Provisioner", description=Doc("storage.v1.StorageClass", "provisioner")),
            Column("ReclaimPolicy", description=Doc("storage.v1.StorageClass", "reclaimPolicy")),
            Column("VolumeBindingMode", description=Doc("storage.v1.StorageClass", "volumeBindingMode")),
            Column(
                "AllowVolumeExpansion", description=Doc("storage.v1.StorageClass", "allowVolumeExpansion")
            ),
            AGE,
        ),
        _storage_class_row,
    ),
}
