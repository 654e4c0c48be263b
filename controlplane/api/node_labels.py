"""The labels a kubelet may give its own Node (k8s.io/kubelet/pkg/apis/well_known_labels.go:
kubeletLabels and kubeletLabelNamespaces): what the kubelet's flag validation accepts in
--node-labels and what NodeRestriction admission lets a node set. Pure data.

node_bootstrap's renderer keeps its own copy (DESIGN: it imports nothing from controlplane); a
unit test holds the two equal."""

from __future__ import annotations

__all__ = [
    "KUBELET_LABELS",
    "KUBELET_LABEL_NAMESPACES",
    "is_kubelet_label",
    "is_kubernetes_label",
    "label_namespace",
]

KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    }
)
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def label_namespace(key: str) -> str:
    prefix, sep, _ = key.partition("/")
    return prefix if sep else ""


def _under(namespace: str, domains: tuple[str, ...]) -> bool:
    return any(namespace == d or namespace.endswith("." + d) for d in domains)


def is_kubelet_label(key: str) -> bool:
    return key in KUBELET_LABELS or _under(label_namespace(key), KUBELET_LABEL_NAMESPACES)


def is_kubernetes_label(key: str) -> bool:
    return _under(label_namespace(key), ("kubernetes.io", "k8s.io"))
