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
    "REQUEST_USER",
    "Admission",
    "Attributes",
    "DeletePlugin",
    "MutatingPlugin",
    "Operation",
    "SubresourceView",
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
    """The chain kube-apiserver enables by default, for the plugins Pinnace has: the webhook
    plugins in upstream's places (MutatingAdmissionWebhook last of the mutating ones,
    ValidatingAdmissionWebhook before ResourceQuota, which holds a namespace lock)."""
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
    return Admission(
        mutating=[
            # The CSR registry strategy (requester identity; what each endpoint may change).
            CSRStrategy(),
            limit_ranger,
            ServiceAccount(),
            node_restriction,
            priority,
            DefaultTolerationSeconds(not_ready_toleration_seconds, unreachable_toleration_seconds),
            mutating_webhooks,
        ],
        validating=[
            limit_ranger,
            priority,
            CertificateSigning(),
            CertificateSubjectRestriction(),
            validating_webhooks,
            ResourceQuota(),
        ],
        deleting=[node_restriction, mutating_webhooks, validating_webhooks],
    )
