"""Admission webhooks (admissionregistration.k8s.io/v1) and the webhook client that the CRD
conversion webhook shares: configuration reading, request matching, AdmissionReview calls."""

from __future__ import annotations

from controlplane.apiserver.webhooks.config import Rule, Webhook, webhooks_of
from controlplane.apiserver.webhooks.dispatcher import MutatingWebhooks, ValidatingWebhooks
from controlplane.apiserver.webhooks.source import ConfigurationSource

__all__ = [
    "ConfigurationSource",
    "MutatingWebhooks",
    "Rule",
    "ValidatingWebhooks",
    "Webhook",
    "webhooks_of",
]
