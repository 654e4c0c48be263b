"""Node selectors as pods express them (k8s.io/component-helpers/scheduling/corev1/nodeaffinity):
`spec.nodeSelector` ANDed with the required node affinity, whose terms are ORed and whose
expressions are ANDed; a term that fails to parse, or has no expressions, matches no node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.api.selectors import LabelSelector, Operator, Requirement

__all__ = [
    "NodeSelector",
    "NodeSelectorTerm",
    "PreferredSchedulingTerms",
    "RequiredNodeAffinity",
    "required_node_affinity",
]

Obj = Mapping[str, Any]

_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
    "Gt": Operator.GREATER_THAN,
    "Lt": Operator.LESS_THAN,
}

OBJECT_NAME_FIELD = "metadata.name"


class _ParseError(Exception):
    pass


def _labels_of(node: Obj) -> Mapping[str, str]:
    labels: Mapping[str, str] = (node.get("metadata") or {}).get("labels") or {}
    return labels


def _name_of(node: Obj) -> str:
    return str((node.get("metadata") or {}).get("name") or "")


def _label_selector(expressions: Sequence[Obj]) -> LabelSelector:
    reqs: list[Requirement] = []
    for expr in expressions:
        op = _OPERATORS.get(str(expr.get("operator") or ""))
        if op is None:
            raise _ParseError(f"{expr.get('operator')!r} is not a valid node selector operator")
        values = expr.get("values")
        try:
            reqs.append(
                Requirement.build(str(expr.get("key") or ""), op, None if values is None else list(values))
            )
        except Exception as exc:
            raise _ParseError(str(exc)) from exc
    return LabelSelector(tuple(reqs))


def _field_selector(expressions: Sequence[Obj]) -> list[tuple[bool, str]]:
    """(equal, value) pairs on metadata.name: the only field node selectors support."""
    out: list[tuple[bool, str]] = []
    for expr in expressions:
        values = list(expr.get("values") or [])
        op = expr.get("operator")
        if expr.get("key") != OBJECT_NAME_FIELD or op not in ("In", "NotIn") or len(values) != 1:
            raise _ParseError(f"unsupported node field selector {expr!r}")
        out.append((op == "In", str(values[0])))
    return out


@dataclass(frozen=True)
class NodeSelectorTerm:
    labels: LabelSelector | None
    fields: tuple[tuple[bool, str], ...] | None
    valid: bool = True

    @classmethod
    def parse(cls, term: Obj) -> NodeSelectorTerm:
        try:
            expressions = term.get("matchExpressions") or []
            fields = term.get("matchFields") or []
            labels = _label_selector(expressions) if expressions else None
            parsed_fields = tuple(_field_selector(fields)) if fields else None
        except _ParseError:
            return cls(None, None, valid=False)
        return cls(labels, parsed_fields)

    def match(self, node: Obj) -> bool:
        if not self.valid or (self.labels is None and self.fields is None):
            return False
        if self.labels is not None and not self.labels.matches(_labels_of(node)):
            return False
        if self.fields is not None:
            name = _name_of(node)
            for equal, value in self.fields:
                if (name == value) != equal:
                    return False
        return True


@dataclass(frozen=True)
class NodeSelector:
    terms: tuple[NodeSelectorTerm, ...]

    @classmethod
    def parse(cls, selector: Obj) -> NodeSelector:
        return cls(tuple(NodeSelectorTerm.parse(t) for t in selector.get("nodeSelectorTerms") or []))

    def match(self, node: Obj) -> bool:
        return any(term.match(node) for term in self.terms)


@dataclass(frozen=True)
class RequiredNodeAffinity:
    node_selector_labels: Mapping[str, str] | None
    node_selector: NodeSelector | None

    def match(self, node: Obj) -> bool:
        if self.node_selector_labels:
            labels = _labels_of(node)
            for key, value in self.node_selector_labels.items():
                if labels.get(key) != value:
                    return False
        if self.node_selector is not None:
            return self.node_selector.match(node)
        return True


def required_node_affinity(pod: Obj) -> RequiredNodeAffinity:
    spec = pod.get("spec") or {}
    labels = spec.get("nodeSelector") or None
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    return RequiredNodeAffinity(
        dict(labels) if labels else None, NodeSelector.parse(required) if required is not None else None
    )


@dataclass(frozen=True)
class PreferredSchedulingTerms:
    terms: tuple[tuple[int, NodeSelectorTerm], ...]

    @classmethod
    def parse(cls, terms: Sequence[Obj]) -> PreferredSchedulingTerms:
        out = []
        for term in terms:
            weight = int(term.get("weight") or 0)
            if weight == 0:
                continue
            out.append((weight, NodeSelectorTerm.parse(term.get("preference") or {})))
        return cls(tuple(out))

    def score(self, node: Obj) -> int:
        return sum(weight for weight, term in self.terms if term.match(node))
