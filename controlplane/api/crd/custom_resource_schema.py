"""One served version's schema, compiled once: prune, default, validate custom objects."""

from __future__ import annotations

import copy
from typing import Any

from controlplane.api.crd import cel, defaulting, listtype, nodes, objectmeta, paths, pruning
from controlplane.api.crd import fielderrors as fe
from controlplane.api.crd.values import MISSING, correlate_item, json_equal, validate_value
from controlplane.api.errors import Cause

__all__ = ["CustomResourceSchema"]

Schema = dict[str, Any]

# Upstream stops before CEL when these appear (`hasBlockingErr` in customresource strategy).
_BLOCKING = frozenset(
    {
        "FieldValueNotSupported",
        "FieldValueRequired",
        "FieldValueTooLong",
        fe.FIELD_VALUE_TOO_MANY,
        "FieldValueTypeInvalid",
    }
)
_BLOCKED_MESSAGE = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


class CustomResourceSchema:
    """`openapi_v3_schema` is the version's `schema.openAPIV3Schema` (already validated)."""

    def __init__(self, openapi_v3_schema: dict[str, Any]) -> None:
        self.schema: Schema = copy.deepcopy(openapi_v3_schema or {})
        self._rules: dict[int, list[cel.CompiledRule]] = {}
        self._compile(self.schema)

    def _compile(self, s: Any) -> None:
        if not isinstance(s, dict):
            return
        compiled: list[cel.CompiledRule] = []
        for rule in s.get("x-kubernetes-validations") or []:
            if isinstance(rule, dict):
                result = cel.compile_rule(rule)
                if isinstance(result, cel.CompiledRule):
                    compiled.append(result)
        if compiled:
            self._rules[id(s)] = compiled
        for sub in nodes.properties(s).values():
            self._compile(sub)
        self._compile(nodes.items(s))
        self._compile(nodes.additional(s)[1])

    @property
    def has_rules(self) -> bool:
        return bool(self._rules)

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Remove unknown fields in place; the removed paths, sorted (`spec.foo`)."""
        return pruning.prune(obj, self.schema, True)

    def default(self, obj: dict[str, Any]) -> None:
        defaulting.default(obj, self.schema)

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
        errs = validate_value(self.schema, obj, "", MISSING if old is None else old)
        # Root metadata is checked by the API server's ObjectMeta validation (upstream passes
        # isResourceRoot=false here), so only embedded resources are checked.
        errs.extend(objectmeta.validate_embedded("", obj, self.schema, False))
        errs.extend(listtype.validate_lists("", self.schema, obj))
        if not self._rules:
            return errs
        if any(e.reason in _BLOCKING for e in errs):
            errs.append(fe.invalid("<nil>", None, _BLOCKED_MESSAGE))
            return errs
        root_value = _root_view(obj)
        root_old = _root_view(old) if old is not None else None
        self._cel(
            self.schema, root_value, root_old if old is not None else MISSING, "", errs, cel.CostBudget()
        )
        return errs

    def validate_rules(self, value: Any, old: Any, path: str) -> list[Cause]:
        """Only the CEL rules, for a value of this schema at `path` (used on defaults)."""
        out: list[Cause] = []
        self._cel(self.schema, value, old, path, out, cel.CostBudget(), ratchet=False)
        return out

    def _cel(
        self,
        s: Schema | None,
        value: Any,
        old: Any,
        path: str,
        out: list[Cause],
        budget: cel.CostBudget,
        ratchet: bool = True,
    ) -> None:
        if s is None or value is None or budget.exhausted:
            return
        rules = self._rules.get(id(s)) or []
        if ratchet and old is not MISSING and json_equal(value, old):
            # Ratcheting (CRDValidationRatcheting): an unchanged value is not re-checked, except
            # by transition rules, which exist to look at the old value.
            rules = [r for r in rules if r.uses_old_self]
        if rules:
            has_old = old is not MISSING
            out.extend(
                cel.evaluate_rules(
                    rules, str(s.get("type") or ""), path, value, old if has_old else None, has_old, s, budget
                )
            )
        if isinstance(value, dict):
            old_map = old if isinstance(old, dict) else None
            props = nodes.properties(s)
            _, extra = nodes.additional(s)
            granular = s.get("x-kubernetes-map-type") != "atomic"
            for name, item in value.items():
                if name in props:
                    old_item = old_map.get(name, MISSING) if old_map is not None and granular else MISSING
                    self._cel(props[name], item, old_item, paths.child(path, name), out, budget, ratchet)
                elif extra is not None:
                    old_item = old_map.get(name, MISSING) if old_map is not None and granular else MISSING
                    self._cel(extra, item, old_item, paths.key(path, name), out, budget, ratchet)
        elif isinstance(value, list):
            item_schema = nodes.items(s)
            if item_schema is None:
                return
            old_list = old if isinstance(old, list) else None
            for i, item in enumerate(value):
                old_item = correlate_item(s, item, old_list)
                self._cel(item_schema, item, old_item, paths.index(path, i), out, budget, ratchet)


def _root_view(obj: dict[str, Any]) -> dict[str, Any]:
    """At the root CEL sees only `metadata.name` and `metadata.generateName`."""
    view = dict(obj)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        view["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return view
