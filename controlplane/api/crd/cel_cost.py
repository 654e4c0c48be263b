"""A runtime cost for `x-kubernetes-validations` rules, bounded as upstream bounds it.

cel-go charges every evaluation step (a variable or field read, an operator, a function call,
each comprehension iteration) against a per-call limit (`celconfig.PerCallLimit`, one million)
and the apiserver charges every rule of one object against a budget (`RuntimeCELCostBudget`,
ten million). celpy has no cost model, so this one counts the steps its interpreter takes over
the same kinds of nodes: a unit per read, selection, index, call, operator and literal
collection, comprehension bodies charged once per iteration. String and list functions are not
charged by size as cel-go's are, so costs are close to cel-go's for loops over data (what the
limits exist for) and lower for long-string functions; the limits and the messages are
upstream's.
"""

from __future__ import annotations

from typing import Any

import lark
from celpy import InterpretedRunner
from celpy.evaluation import Activation, CELEvalError, Evaluator

__all__ = [
    "COST_LIMIT_EXCEEDED",
    "PER_CALL_LIMIT",
    "RUNTIME_COST_BUDGET",
    "STEPS",
    "CostLimitExceeded",
    "CostedRunner",
]

# k8s.io/apiserver/pkg/apis/cel: PerCallLimit and RuntimeCELCostBudget.
PER_CALL_LIMIT = 1_000_000
RUNTIME_COST_BUDGET = 10_000_000
COST_LIMIT_EXCEEDED = "operation cancelled: actual cost limit exceeded"

# Parse-tree nodes that are one step each; the rest are grammar levels that only pass through.
STEPS = frozenset(
    {
        "ident",
        "ident_arg",
        "dot_ident",
        "dot_ident_arg",
        "member_dot",
        "member_dot_arg",
        "member_index",
        "member_object",
        "list_lit",
        "map_lit",
        "relation_lt",
        "relation_le",
        "relation_gt",
        "relation_ge",
        "relation_eq",
        "relation_ne",
        "relation_in",
        "addition_add",
        "addition_sub",
        "multiplication_mul",
        "multiplication_div",
        "multiplication_mod",
        "unary_not",
        "unary_neg",
    }
)


class CostLimitExceeded(Exception):
    """Not a CELEvalError: `||`, `&&` and the macros must not absorb it as an undecided value."""

    def __init__(self) -> None:
        super().__init__(COST_LIMIT_EXCEEDED)


class _Meter:
    __slots__ = ("cost", "limit")

    def __init__(self, limit: int) -> None:
        self.cost = 0
        self.limit = limit


class _CostedEvaluator(Evaluator):
    def __init__(self, ast: lark.Tree[Any], activation: Activation, meter: _Meter) -> None:
        super().__init__(ast, activation)
        self.meter = meter

    def sub_evaluator(self, ast: lark.Tree[Any]) -> Evaluator:
        # Comprehension bodies run on a sub-evaluator per macro: they charge the same meter.
        return _CostedEvaluator(ast, self.activation, self.meter)

    def _charge(self) -> None:
        meter = self.meter
        meter.cost += 1
        if meter.cost > meter.limit:
            raise CostLimitExceeded()

    def _visit_tree(self, tree: lark.Tree[Any]) -> Any:
        if tree.data in STEPS:
            self._charge()
        return super()._visit_tree(tree)

    def ident_value(self, name: str, root_scope: bool = False) -> Any:
        # Variable reads are resolved here without a node visit of their own.
        self._charge()
        return super().ident_value(name, root_scope)

    def evaluate(self, context: Any = None) -> Any:
        # One step per evaluation: per iteration for a comprehension body (cel-go's loop step).
        self._charge()
        return super().evaluate(context)


class CostedRunner(InterpretedRunner):
    """celpy's interpreter with a cost: `evaluate_with_cost` returns (value, cost) or raises
    `CostLimitExceeded` once `limit` is passed."""

    def evaluate_with_cost(self, context: Any, limit: int = PER_CALL_LIMIT) -> tuple[Any, int]:
        """A CEL evaluation error comes back as the value (a `CELEvalError`), with what it cost."""
        meter = _Meter(limit)
        evaluator = _CostedEvaluator(self.ast, self.new_activation(), meter)
        try:
            value = evaluator.evaluate(context)
        except CELEvalError as exc:
            value = exc
        return value, meter.cost

    def evaluate(self, context: Any) -> Any:
        value = self.evaluate_with_cost(context)[0]
        if isinstance(value, CELEvalError):
            raise value
        return value
