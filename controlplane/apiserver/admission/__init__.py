"""Admission: the plugins every write passes after defaulting (mutating) and after validation
(validating), in upstream's order. NamespaceLifecycle and the Service IP/port allocation stay in
the REST pipeline itself, where they ran before this package existed."""

from __future__ import annotations

from controlplane.apiserver.admission.chain import Admission
from controlplane.apiserver.admission.default_toleration_seconds import (
    DEFAULT_TOLERATION_SECONDS,
    DefaultTolerationSeconds,
)
from controlplane.apiserver.admission.interface import (
    Attributes,
    MutatingPlugin,
    Operation,
    ValidatingPlugin,
    ValidationScope,
    forbidden,
)
from controlplane.apiserver.admission.limit_ranger import LimitRanger
from controlplane.apiserver.admission.priority import Priority, system_priority_class_objects
from controlplane.apiserver.admission.resource_quota import ResourceQuota
from controlplane.apiserver.admission.service_account import ServiceAccount

__all__ = [
    "DEFAULT_TOLERATION_SECONDS",
    "Admission",
    "Attributes",
    "MutatingPlugin",
    "Operation",
    "ValidatingPlugin",
    "ValidationScope",
    "default_admission",
    "forbidden",
    "system_priority_class_objects",
]


def default_admission(
    *,
    not_ready_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS,
    unreachable_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS,
) -> Admission:
    """The chain kube-apiserver enables by default, for the plugins Pinnace has."""
    limit_ranger = LimitRanger()
    priority = Priority()
    return Admission(
        mutating=[
            limit_ranger,
            ServiceAccount(),
            priority,
            DefaultTolerationSeconds(not_ready_toleration_seconds, unreachable_toleration_seconds),
        ],
        validating=[limit_ranger, priority, ResourceQuota()],
    )
