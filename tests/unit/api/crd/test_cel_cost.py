"""The runtime cost of x-kubernetes-validations: a per-call limit and a budget per object, with
upstream's messages. The limits are lowered here so that the tests run in milliseconds; the
real ones (one million per call, ten million per object) are upstream's constants."""

from __future__ import annotations

from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel

from controlplane.api.crd import CustomResourceSchema, cel
from controlplane.api.crd.cel_cost import (
    PER_CALL_LIMIT,
    RUNTIME_COST_BUDGET,
    CostedRunner,
    CostLimitExceeded,
)
from controlplane.api.crd.cel_library import FUNCTIONS

NESTED = "self.all(a, self.all(b, a == b || a != b))"


def program(expr: str) -> CostedRunner:
    env = celpy.Environment(runner_class=CostedRunner)
    runner = env.program(env.compile(expr), functions=FUNCTIONS)
    assert isinstance(runner, CostedRunner)
    return runner


def test_upstream_limits() -> None:
    assert PER_CALL_LIMIT == 1_000_000
    assert RUNTIME_COST_BUDGET == 10_000_000


def test_cost_grows_with_the_data_a_rule_loops_over() -> None:
    small = program("self.all(x, x > 0)").evaluate_with_cost({"self": json_to_cel([1] * 10)})
    large = program("self.all(x, x > 0)").evaluate_with_cost({"self": json_to_cel([1] * 100)})
    assert small[0] and large[0]
    assert 10 * 2 <= small[1] < large[1]
    assert large[1] >= 100 * 2
    nested = program(NESTED).evaluate_with_cost({"self": json_to_cel(list(range(20)))})
    assert nested[1] >= 20 * 20


def test_the_limit_cancels_even_under_short_circuit_operators() -> None:
    with pytest.raises(CostLimitExceeded, match=r"^operation cancelled: actual cost limit exceeded$"):
        program(f"{NESTED} || true").evaluate_with_cost({"self": json_to_cel(list(range(50)))}, limit=300)
    value, cost = program("self.x / 0 > 1").evaluate_with_cost({"self": json_to_cel({"x": 1})})
    assert isinstance(value, celpy.CELEvalError) and cost > 0


def _schema(*rules: dict[str, Any]) -> CustomResourceSchema:
    return CustomResourceSchema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= 0"}]},
                            "x-kubernetes-validations": list(rules),
                        },
                        "other": {"type": "integer", "x-kubernetes-validations": [{"rule": "self < 0"}]},
                    },
                }
            },
        }
    )


def _validate(schema: CustomResourceSchema, items: list[int]) -> list[tuple[str, str, str]]:
    obj = {
        "apiVersion": "e.com/v1",
        "kind": "K",
        "metadata": {"name": "k"},
        "spec": {"items": items, "other": 1},
    }
    return [(c.reason, c.field, c.message) for c in schema.validate(obj, None)]


def test_a_rule_past_the_per_call_limit_fails_and_stops_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cel, "PER_CALL_LIMIT", 500)
    schema = _schema({"rule": NESTED})
    assert _validate(schema, list(range(5))) == [
        ("FieldValueInvalid", "spec.other", 'Invalid value: "integer": failed rule: self < 0')
    ]
    assert _validate(schema, list(range(40))) == [
        (
            "FieldValueInvalid",
            "spec.items",
            "Invalid value: \"array\": 'operation cancelled: actual cost limit exceeded': no further "
            f"validation rules will be run due to call cost exceeds limit for rule: {NESTED}",
        )
    ]  # spec.other's failing rule never ran


def test_the_message_names_the_rule_by_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cel, "PER_CALL_LIMIT", 500)
    errors = _validate(_schema({"rule": NESTED, "message": "items must be comparable"}), list(range(40)))
    assert errors[0][2].endswith("call cost exceeds limit for rule: items must be comparable")


def test_the_budget_is_shared_by_every_rule_of_an_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cel, "RUNTIME_COST_BUDGET", 40)
    errors = _validate(_schema(), list(range(100)))
    assert errors == [
        (
            "FieldValueInvalid",
            errors[0][1],
            'Invalid value: "integer": validation failed due to running out of cost budget, '
            "no further validation rules will be run",
        )
    ]
    # The budget ran out part of the way through the items, one rule run per item.
    assert errors[0][1].startswith("spec.items[") and errors[0][1] != "spec.items[0]"
    assert _validate(_schema(), [1, 2]) == [
        ("FieldValueInvalid", "spec.other", 'Invalid value: "integer": failed rule: self < 0')
    ]


# --- the estimated cost at CRD creation ---------------------------------------------------------

FLD = "spec.validation.openAPIV3Schema"
RULE_PATH = f"{FLD}.properties[spec].properties[tags].x-kubernetes-validations[0].rule"
HINT = (
    "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, "
    "and strings are declared)"
)


def _crd_schema(
    rule: str, tags: dict[str, Any] | None = None, item: dict[str, Any] | None = None
) -> dict[str, Any]:
    tag_schema = {
        "type": "array",
        "items": {"type": "string", **(item or {})},
        **(tags or {}),
        "x-kubernetes-validations": [{"rule": rule}],
    }
    return {"type": "object", "properties": {"spec": {"type": "object", "properties": {"tags": tag_schema}}}}


def _cost_causes(schema: dict[str, Any]) -> list[tuple[str, str]]:
    from controlplane.api.crd import structural

    return [(c.field, c.message) for c in structural.validate_crd_schema(schema, FLD)]


def test_an_unbounded_scan_is_refused_as_upstream_words_it() -> None:
    assert _cost_causes(_crd_schema("self.all(x, x.contains('gpu'))")) == [
        (RULE_PATH, f"Forbidden: estimated rule cost exceeds budget by factor of more than 100x {HINT}"),
        (
            RULE_PATH,
            "Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
        ),
        (
            FLD,
            "Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema "
            f"exceeds budget by factor of more than 100x {HINT}",
        ),
    ]


@pytest.mark.parametrize(
    ("rule", "tags", "item"),
    [
        ("self.all(x, x.contains('gpu'))", {"maxItems": 10}, {"maxLength": 63}),
        ("self.all(a, self.all(b, a != b))", {"maxItems": 100}, None),
        ("self.all(x, x.size() < 10)", None, None),  # linear in an unbounded list: within budget
        ("self.size() < 5", None, None),
    ],
)
def test_bounded_and_cheap_rules_are_accepted(
    rule: str, tags: dict[str, Any] | None, item: dict[str, Any] | None
) -> None:
    assert _cost_causes(_crd_schema(rule, tags, item)) == []


def test_a_quadratic_rule_over_a_bounded_list_reports_the_factor() -> None:
    causes = _cost_causes(_crd_schema("self.all(a, self.all(b, a != b))", {"maxItems": 3000}))
    assert len(causes) == 1 and causes[0][0] == RULE_PATH
    assert causes[0][1].startswith("Forbidden: estimated rule cost exceeds budget by factor of ")
    assert causes[0][1].endswith(f"x {HINT}") and "more than" not in causes[0][1]


def test_the_total_multiplies_rules_by_the_items_they_run_on() -> None:
    # Each rule is cheap, but it runs on every item of an unbounded list of unbounded lists.
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "rows": {
                        "type": "array",
                        "items": {
                            "type": "array",
                            "items": {
                                "type": "string",
                                "x-kubernetes-validations": [{"rule": "self.contains('x')"}],
                            },
                        },
                    }
                },
            }
        },
    }
    causes = _cost_causes(schema)
    assert causes[-1][0] == FLD
    assert "estimated rule cost total for entire OpenAPIv3 schema exceeds budget" in causes[-1][1]
    assert not any("estimated rule cost exceeds budget" in m for _, m in causes)  # each rule alone is fine
