"""matchConditions: CEL expressions over the request (celpy), each must be true for the webhook
to be called. Programs are compiled once per expression."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.celtypes import BoolType
from celpy.evaluation import CELEvalError

__all__ = ["MatchConditionError", "evaluate"]


class MatchConditionError(Exception):
    pass


@functools.lru_cache(maxsize=512)
def _program(expression: str) -> Any:
    env = celpy.Environment()
    try:
        return env.program(env.compile(expression))
    except CELParseError as exc:
        raise MatchConditionError(f"compilation failed: {exc}") from exc


def evaluate(conditions: tuple[tuple[str, str], ...], variables: Mapping[str, Any]) -> bool:
    """True when every condition holds; a false condition wins over an error in another, as
    upstream's matcher reports a definite no-match first."""
    activation = {key: json_to_cel(value) for key, value in variables.items()}
    failure: str | None = None
    for name, expression in conditions:
        try:
            result = _program(expression).evaluate(activation)
        except MatchConditionError as exc:
            failure = failure or f"matchCondition '{name}': {exc}"
            continue
        except Exception as exc:  # celpy raises its own evaluation errors
            failure = failure or f"matchCondition '{name}': {exc}"
            continue
        if isinstance(result, CELEvalError):
            failure = failure or f"matchCondition '{name}': {result.args[0] if result.args else result}"
            continue
        if not isinstance(result, bool | BoolType):
            failure = failure or f"matchCondition '{name}' must evaluate to bool"
            continue
        if not result:
            return False
    if failure is not None:
        raise MatchConditionError(failure)
    return True
