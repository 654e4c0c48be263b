"""Admission: the plugins every write passes after defaulting (mutating) and after validation
(validating), in upstream's order. NamespaceLifecycle and the Service IP/port allocation stay in
the REST pipeline itself, where they ran before this package existed."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from controlplane.apiserver.admission.chain import Admission
from controlplane.apiserver.admission.default_toleration_seconds import (
    DEFAULT_TOLERATION_SECONDS,
    DefaultTolerationSeconds,
)
from controlplane.apiserver.admission.interface import (
    REQUEST_USER,
    Attributes,
    DeletePlugin,
    MutatingPlugin,
    Operation,
    SubresourceView,
    ValidatingPlugin,
    ValidationScope,
    forbidden,
)
from controlplane.apiserver.admission.limit_ranger import LimitRanger
from controlplane.apiserver.admission.noderestriction import NodeRestriction
from controlplane.apiserver.admission.priority import Priority, system_priority_class_objects
from controlplane.apiserver.admission.resource_quota import ResourceQuota
from controlplane.apiserver.admission.service_account import ServiceAccount

__all__ = [
    "DEFAULT_TOLERATION_SECONDS",
    "PLUGIN_NAMES",
    "REQUEST_USER",
    "Admission",
    "Attributes",
    "DeletePlugin",
    "MutatingPlugin",
    "Operation",
    "SubresourceView",
    "ValidatingPlugin",
    "ValidationScope",
    "check_plugin_names",
    "default_admission",
    "forbidden",
    "system_priority_class_objects",
]


# What --disable-admission-plugins may name: the plugins of the chain, by upstream's names.
PLUGIN_NAMES = (
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "Priority",
    "DefaultTolerationSeconds",
    "MutatingAdmissionWebhook",
    "CertificateSigning",
    "CertificateSubjectRestriction",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
)


def check_plugin_names(names: Collection[str]) -> None:
    """ValueError for a name kube-apiserver would not know, worded as its flag check."""
    for name in names:
        if name not in PLUGIN_NAMES:
            raise ValueError(f'disable-admission-plugins plugin "{name}" is unknown')


def default_admission(
    *,
    not_ready_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS,
    unreachable_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS,
    disabled: Collection[str] = (),
) -> Admission:
    """The chain kube-apiserver enables by default, for the plugins Pinnace has, less `disabled`
    (--disable-admission-plugins): the webhook plugins in upstream's places
    (MutatingAdmissionWebhook last of the mutating ones, ValidatingAdmissionWebhook before
    ResourceQuota, which holds a namespace lock)."""
    check_plugin_names(disabled)
    # Imported here: the webhook package imports this package's interface module.
    from controlplane.apiserver.certificates import (
        CertificateSigning,
        CertificateSubjectRestriction,
        CSRStrategy,
    )
    from controlplane.apiserver.webhooks import ConfigurationSource, MutatingWebhooks, ValidatingWebhooks

    source = ConfigurationSource()
    mutating_webhooks = MutatingWebhooks(source)
    validating_webhooks = ValidatingWebhooks(source)
    limit_ranger = LimitRanger()
    priority = Priority()
    node_restriction = NodeRestriction()
    service_account = ServiceAccount()

    def enabled(plugins: list[Any]) -> list[Any]:
        return [p for p in plugins if p.name not in disabled]

    return Admission(
        mutating=[
            # The CSR registry strategy (requester identity; what each endpoint may change):
            # part of the resource, not a plugin, so never disabled.
            CSRStrategy(),
            *enabled(
                [
                    limit_ranger,
                    service_account,
                    node_restriction,
                    priority,
                    DefaultTolerationSeconds(not_ready_toleration_seconds, unreachable_toleration_seconds),
                    mutating_webhooks,
                ]
            ),
        ],
        validating=enabled(
            [
                limit_ranger,
                service_account,
                priority,
                CertificateSigning(),
                CertificateSubjectRestriction(),
                validating_webhooks,
                ResourceQuota(),
            ]
        ),
        deleting=enabled([node_restriction, mutating_webhooks, validating_webhooks]),
    )
