"""The estimated cost of `x-kubernetes-validations` rules at CRD creation, as a lower bound.

Upstream's CRD validation runs cel-go's cost estimator on every rule against the worst case the
schema allows: arrays, maps and strings without `maxItems`, `maxProperties` and `maxLength` are
as large as a 3 MiB request can hold. A rule estimated above `StaticEstimatedCostLimit` is
forbidden; so is a schema whose rules, each multiplied by how many times it can run (the items
of enclosing lists and maps), sum above `StaticEstimatedCRDCostLimit`.

This estimator charges a unit per step (as `cel_cost` does at run time), each comprehension's
body once per element the iterated list or map can hold (upstream's sizes from the minimum
serialized size of an element), and the string functions that scan their receiver a tenth of
its maximum length. Every charge is at most cel-go's, so what this rejects upstream rejects too
(the reported factor can be lower than upstream's); rules whose cost comes from charges not
modelled here (string equality, concatenation, list equality) are accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import lark

from controlplane.api.crd import cel, nodes
from controlplane.api.crd import fielderrors as fe
from controlplane.api.crd.cel_cost import STEPS
from controlplane.api.crd.paths import child, index, key
from controlplane.api.errors import Cause

__all__ = ["STATIC_CRD_COST_LIMIT", "STATIC_RULE_COST_LIMIT", "cost_errors", "estimate", "factor_message"]

Schema = dict[str, Any]

# k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel and apiserver/pkg/apis/cel.
STATIC_RULE_COST_LIMIT = 10_000_000
STATIC_CRD_COST_LIMIT = 100_000_000
MAX_REQUEST_SIZE_BYTES = 3 * 1024 * 1024
# Upstream names at most this many of the most expensive rules when the total is too high.
_MOST_EXPENSIVE = 4
_HINT = (
    "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, "
    "and strings are declared)"
)
_COMPREHENSIONS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_SCANNING = frozenset({"contains", "startsWith", "endsWith", "matches", "indexOf", "lastIndexOf"})
_STRING_FORMAT_SIZES = {"duration": 21, "date": 12, "date-time": 34}


def factor_message(what: str, cost: int, limit: int) -> str:
    """`getCostErrorMessage`."""
    exceed = cost / limit
    if exceed > 100.0:
        factor = "more than 100x"
    elif exceed < 1.5:
        factor = f"{exceed:f}x"
    else:
        factor = f"{exceed:.1f}x"
    return f"{what} exceeds budget by factor of {factor} {_HINT}"


# --- sizes ----------------------------------------------------------------------------------------


def _type(s: Schema | None) -> str:
    if s is None:
        return ""
    if s.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    return str(s.get("type") or "")


def _min_serialized_size(s: Schema | None) -> int:
    t = _type(s)
    if t == "string":
        assert s is not None
        return 2 + int(s.get("minLength") or 0)
    if t == "boolean":
        return 4
    if t in ("object", "array"):
        return 2
    return 1


def max_elements(s: Schema | None) -> int:
    """How many elements a list or map of this schema can hold in one request (1: not one)."""
    if s is None:
        return 1
    t = _type(s)
    if t == "array":
        if isinstance(s.get("maxItems"), int):
            return int(s["maxItems"])
        return (MAX_REQUEST_SIZE_BYTES - 2) // (_min_serialized_size(nodes.items(s)) + 1)
    if t == "object" and nodes.additional(s)[0]:
        if isinstance(s.get("maxProperties"), int):
            return int(s["maxProperties"])
        return (MAX_REQUEST_SIZE_BYTES - 2) // (_min_serialized_size(nodes.additional(s)[1]) + 6)
    return 1


def _max_length(s: Schema | None) -> int:
    if _type(s) != "string":
        return 0
    assert s is not None
    if isinstance(s.get("maxLength"), int):
        return int(s["maxLength"])
    enum = s.get("enum")
    if isinstance(enum, list) and enum:
        return max((len(v) for v in enum if isinstance(v, str)), default=0)
    fmt = s.get("format")
    if isinstance(fmt, str) and fmt in _STRING_FORMAT_SIZES:
        return _STRING_FORMAT_SIZES[fmt]
    return MAX_REQUEST_SIZE_BYTES - 2


# --- expressions ----------------------------------------------------------------------------------

_KEY_SCHEMA: Schema = {"type": "string"}


def _element(s: Schema | None) -> Schema | None:
    """What a comprehension over `s` binds its variable to: list items, or map keys."""
    if _type(s) == "array":
        return nodes.items(s)
    if _type(s) == "object":
        return _KEY_SCHEMA
    return None


def _member(s: Schema | None, name: str) -> Schema | None:
    if s is None or _type(s) != "object":
        return None
    found = nodes.prop(s, cel.unescape_property(name))
    if found is not None:
        return found
    has_extra, extra = nodes.additional(s)
    return extra if has_extra else None


def _walk(tree: Any, env: dict[str, Schema | None]) -> tuple[int, Schema | None]:
    """(estimated cost, schema of the value where known)."""
    if not isinstance(tree, lark.Tree):
        return 0, None
    kind = str(tree.data)
    kids = tree.children
    if kind == "ident":
        return 1, env.get(str(kids[0]))
    if kind == "literal":
        return 0, None
    if kind == "member_dot":
        cost, s = _walk(kids[0], env)
        return cost + 1, _member(s, str(kids[1]))
    if kind == "member_index":
        cost, s = _walk(kids[0], env)
        idx_cost, _ = _walk(kids[1], env)
        element = nodes.items(s) if _type(s) == "array" else nodes.additional(s)[1]
        return cost + idx_cost + 1, element
    if kind == "member_dot_arg":
        return _method(kids, env)
    total = 0
    schemas: list[Schema | None] = []
    for kid in kids:
        cost, s = _walk(kid, env)
        total += cost
        schemas.append(s)
    if kind in STEPS:
        total += 1
    # Grammar levels that only pass one value through keep its schema.
    passing = len(kids) == 1 and kind not in STEPS
    return total, schemas[0] if passing and schemas else None


def _method(kids: list[Any], env: dict[str, Schema | None]) -> tuple[int, Schema | None]:
    target_cost, target = _walk(kids[0], env)
    name = str(kids[1])
    args = kids[2].children if len(kids) > 2 and isinstance(kids[2], lark.Tree) else []
    if name in _COMPREHENSIONS and len(args) >= 2:
        variable = next((str(t.children[0]) for t in args[0].iter_subtrees() if t.data == "ident"), "")
        inner = {**env, variable: _element(target)}
        body = sum(_walk(arg, inner)[0] for arg in args[1:])
        return target_cost + 1 + max_elements(target) * (body + 1), None
    cost = target_cost + 1 + sum(_walk(arg, env)[0] for arg in args)
    if name in _SCANNING:
        cost += math.ceil(_max_length(target) * 0.1)
    return cost, None


def estimate(rule_ast: Any, s: Schema, is_root: bool) -> int:
    """The estimated cost of one rule at the schema node `s`."""
    del is_root  # metadata, apiVersion and kind are small and bounded; unknown schemas cost 1
    cost, _ = _walk(rule_ast, {"self": s, "oldSelf": s})
    return cost


# --- the schema -----------------------------------------------------------------------------------


@dataclass
class _Total:
    total: int = 0
    contributions: list[tuple[int, str]] = field(default_factory=list)


def cost_errors(schema: Schema, fld: str) -> list[Cause]:
    """Upstream's cost causes for a CRD version's `openAPIV3Schema` at `fld`."""
    errs: list[Cause] = []
    totals = _Total()
    _node(schema, fld, 1, True, errs, totals)
    if totals.total > STATIC_CRD_COST_LIMIT:
        for _, path in sorted(totals.contributions, key=lambda c: -c[0])[:_MOST_EXPENSIVE]:
            errs.append(
                fe.forbidden(
                    path,
                    "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
                )
            )
        errs.append(
            fe.forbidden(
                fld,
                factor_message(
                    "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                    totals.total,
                    STATIC_CRD_COST_LIMIT,
                ),
            )
        )
    return errs


def _node(s: Any, path: str, cardinality: int, is_root: bool, errs: list[Cause], totals: _Total) -> None:
    if not isinstance(s, dict):
        return
    rules = s.get("x-kubernetes-validations")
    if isinstance(rules, list):
        for i, rule in enumerate(rules):
            if not isinstance(rule, dict) or not str(rule.get("rule") or "").strip():
                continue
            compiled = cel.compile_rule(rule)
            if not isinstance(compiled, cel.CompiledRule):
                continue  # the compile error is reported already
            rpath = child(index(child(path, "x-kubernetes-validations"), i), "rule")
            cost = estimate(compiled.program.ast, s, is_root)
            if cost > STATIC_RULE_COST_LIMIT:
                errs.append(
                    fe.forbidden(rpath, factor_message("estimated rule cost", cost, STATIC_RULE_COST_LIMIT))
                )
            contribution = cost * cardinality
            totals.total += contribution
            totals.contributions.append((contribution, rpath))
    for name, sub in nodes.properties(s).items():
        _node(sub, key(child(path, "properties"), name), cardinality, False, errs, totals)
    items = s.get("items")
    if isinstance(items, dict):
        _node(items, child(path, "items"), cardinality * max_elements(s), False, errs, totals)
    has_extra, extra = nodes.additional(s)
    if has_extra and isinstance(extra, dict):
        _node(extra, child(path, "additionalProperties"), cardinality * max_elements(s), False, errs, totals)
