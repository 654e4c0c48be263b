"""x-kubernetes-validations at run time: messages, reasons, fieldPath, transition rules, libraries."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api.crd import CustomResourceSchema


def _schema(rules: list[dict[str, Any]], **spec_extra: Any) -> CustomResourceSchema:
    spec: dict[str, Any] = {
        "type": "object",
        "x-kubernetes-validations": rules,
        "properties": {
            "replicas": {"type": "integer"},
            "max": {"type": "integer"},
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "memory": {"type": "string"},
            "endpoint": {"type": "string"},
            "port": {"x-kubernetes-int-or-string": True},
        },
        **spec_extra,
    }
    return CustomResourceSchema({"type": "object", "properties": {"spec": spec}})


def _run(
    rules: list[dict[str, Any]], spec: dict[str, Any], old: dict[str, Any] | None = None
) -> list[tuple[str, str, str]]:
    obj = {"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "w"}, "spec": spec}
    old_obj = None if old is None else {**obj, "spec": old}
    return [(c.reason, c.field, c.message) for c in _schema(rules).validate(obj, old_obj)]


def test_passing_rule() -> None:
    assert _run([{"rule": "self.replicas <= self.max"}], {"replicas": 1, "max": 2}) == []


def test_failing_rule_default_message() -> None:
    assert _run([{"rule": "self.replicas <= self.max"}], {"replicas": 3, "max": 2}) == [
        ("FieldValueInvalid", "spec", 'Invalid value: "object": failed rule: self.replicas <= self.max')
    ]


def test_message_reason_and_field_path() -> None:
    rules = [
        {
            "rule": "self.replicas <= self.max",
            "message": "replicas too high",
            "reason": "FieldValueForbidden",
            "fieldPath": ".replicas",
        }
    ]
    assert _run(rules, {"replicas": 3, "max": 2}) == [
        ("FieldValueForbidden", "spec.replicas", "Forbidden: replicas too high")
    ]


def test_required_and_duplicate_reasons() -> None:
    assert _run([{"rule": "has(self.name)", "reason": "FieldValueRequired", "message": "name!"}], {}) == [
        ("FieldValueRequired", "spec", "Required value: name!")
    ]
    assert _run([{"rule": "false", "reason": "FieldValueDuplicate"}], {}) == [
        ("FieldValueDuplicate", "spec", 'Duplicate value: "object"')
    ]


def test_message_expression() -> None:
    rules = [
        {
            "rule": "self.replicas <= self.max",
            "messageExpression": "'replicas ' + string(self.replicas) + ' > ' + string(self.max)",
        }
    ]
    assert _run(rules, {"replicas": 3, "max": 2}) == [
        ("FieldValueInvalid", "spec", 'Invalid value: "object": replicas 3 > 2')
    ]


def test_message_expression_falling_back_to_message() -> None:
    rules = [{"rule": "false", "message": "fallback", "messageExpression": "''"}]
    assert _run(rules, {}) == [("FieldValueInvalid", "spec", 'Invalid value: "object": fallback')]


def test_transition_rule_skipped_on_create_and_checked_on_update() -> None:
    rules = [{"rule": "self.name == oldSelf.name", "message": "name is immutable"}]
    assert _run(rules, {"name": "a"}) == []
    assert _run(rules, {"name": "a"}, old={"name": "a"}) == []
    assert _run(rules, {"name": "b"}, old={"name": "a"}) == [
        ("FieldValueInvalid", "spec", 'Invalid value: "object": name is immutable')
    ]


def test_transition_rule_on_a_field_skipped_when_old_value_absent() -> None:
    schema = CustomResourceSchema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "name": {
                            "type": "string",
                            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}],
                        }
                    },
                }
            },
        }
    )
    assert schema.validate({"spec": {"name": "a"}}, {"spec": {}}) == []
    [cause] = schema.validate({"spec": {"name": "a"}}, {"spec": {"name": "b"}})
    assert (cause.field, cause.message) == ("spec.name", 'Invalid value: "string": immutable')


def test_optional_old_self() -> None:
    rules = [
        {
            "rule": "!oldSelf.hasValue() || self.name == oldSelf.value().name",
            "optionalOldSelf": True,
            "message": "m",
        }
    ]
    assert _run(rules, {"name": "a"}) == []
    assert _run(rules, {"name": "b"}, old={"name": "a"}) == [
        ("FieldValueInvalid", "spec", 'Invalid value: "object": m')
    ]


def test_list_map_items_correlate_by_key() -> None:
    schema = CustomResourceSchema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                                "x-kubernetes-validations": [
                                    {"rule": "self.port == oldSelf.port", "message": "port fixed"}
                                ],
                            },
                        }
                    },
                }
            },
        }
    )
    old = {"spec": {"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]}}
    assert (
        schema.validate({"spec": {"ports": [{"name": "b", "port": 2}, {"name": "c", "port": 9}]}}, old) == []
    )
    [cause] = schema.validate({"spec": {"ports": [{"name": "a", "port": 5}]}}, old)
    assert (cause.field, cause.message) == ("spec.ports[0]", 'Invalid value: "object": port fixed')


def test_evaluation_error() -> None:
    assert _run([{"rule": "self.name == 'x'"}], {}) == [
        (
            "FieldValueInvalid",
            "spec",
            "Invalid value: \"object\": no such key: name evaluating rule: self.name == 'x'",
        )
    ]


def test_root_rule_path_is_nil_and_sees_only_name_in_metadata() -> None:
    schema = CustomResourceSchema(
        {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.metadata.name.startsWith('ok') && !has(self.metadata.labels)"}
            ],
            "properties": {"spec": {"type": "object"}},
        }
    )
    assert schema.validate({"metadata": {"name": "ok-1", "labels": {"a": "b"}}, "spec": {}}, None) == []
    [cause] = schema.validate({"metadata": {"name": "bad"}, "spec": {}}, None)
    assert cause.field == "<nil>"


LIBRARY = [
    ("self.tags.isSorted()", {"tags": ["a", "b"]}, {"tags": ["b", "a"]}),
    ("self.tags.all(t, t.matches('^[a-z]+$'))", {"tags": ["ab"]}, {"tags": ["A"]}),
    ("self.tags.exists(t, t.startsWith('x'))", {"tags": ["xa"]}, {"tags": ["a"]}),
    ("self.tags.filter(t, t.size() > 1).size() == 0", {"tags": ["a"]}, {"tags": ["aa"]}),
    ("self.tags.map(t, t.upperAscii()) == ['A']", {"tags": ["a"]}, {"tags": ["b"]}),
    ("self.name.lowerAscii() == 'abc'", {"name": "ABC"}, {"name": "ABD"}),
    ("self.name.split('-').size() == 2", {"name": "a-b"}, {"name": "ab"}),
    ("self.name.indexOf('b') == 1", {"name": "ab"}, {"name": "ba"}),
    ("self.name.find('[0-9]+') == '12'", {"name": "a12"}, {"name": "a"}),
    ("quantity(self.memory).isLessThan(quantity('1Gi'))", {"memory": "512Mi"}, {"memory": "2Gi"}),
    ("quantity(self.memory).compareTo(quantity('1G')) == 0", {"memory": "1000M"}, {"memory": "1Gi"}),
    ("isQuantity(self.memory)", {"memory": "1.5"}, {"memory": "one"}),
    (
        "isURL(self.endpoint) && url(self.endpoint).getScheme() == 'https'",
        {"endpoint": "https://a/b"},
        {"endpoint": "http://a"},
    ),
    (
        "url(self.endpoint).getHostname() == 'h' && url(self.endpoint).getPort() == '8443'",
        {"endpoint": "https://h:8443/"},
        {"endpoint": "https://h/"},
    ),
    ("type(self.port) == int ? self.port < 100 : self.port.endsWith('%')", {"port": "5%"}, {"port": 500}),
    (
        "[1, 2, 3].sum() == 6 && [3, 1].min() == 1 && [3, 1].max() == self.replicas",
        {"replicas": 3},
        {"replicas": 2},
    ),
]


@pytest.mark.parametrize(("rule", "good", "bad"), LIBRARY)
def test_library_functions(rule: str, good: dict[str, Any], bad: dict[str, Any] | None) -> None:
    assert _run([{"rule": rule}], good) == []
    if bad is not None:
        assert _run([{"rule": rule}], bad) == [
            ("FieldValueInvalid", "spec", f'Invalid value: "object": failed rule: {rule}')
        ]


def test_null_values_are_not_validated() -> None:
    schema = CustomResourceSchema(
        {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "nullable": True, "x-kubernetes-validations": [{"rule": "false"}]}
            },
        }
    )
    assert schema.validate({"spec": None}, None) == []


def test_values_are_typed_by_their_schema() -> None:
    schema = CustomResourceSchema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "x-kubernetes-validations": [
                        {"rule": "self.ratio > 0.5"},
                        {"rule": "self.when.getFullYear() == 2024"},
                        {"rule": "self.timeout > duration('1m')"},
                    ],
                    "properties": {
                        "ratio": {"type": "number"},
                        "when": {"type": "string", "format": "date-time"},
                        "timeout": {"type": "string", "format": "duration"},
                    },
                }
            },
        }
    )
    assert (
        schema.validate({"spec": {"ratio": 1, "when": "2024-05-01T00:00:00Z", "timeout": "5m"}}, None) == []
    )
    causes = schema.validate({"spec": {"ratio": 0, "when": "2023-05-01T00:00:00Z", "timeout": "30s"}}, None)
    assert [c.message for c in causes] == [
        'Invalid value: "object": failed rule: self.ratio > 0.5',
        'Invalid value: "object": failed rule: self.when.getFullYear() == 2024',
        """Invalid value: "object": failed rule: self.timeout > duration('1m')""",
    ]


def test_ratcheting_unchanged_invalid_values_pass_on_update() -> None:
    schema = CustomResourceSchema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "name": {
                            "type": "string",
                            "maxLength": 3,
                            "x-kubernetes-validations": [{"rule": "self != 'bad'"}],
                        },
                        "other": {"type": "integer"},
                    },
                }
            },
        }
    )
    old = {"spec": {"name": "toolong", "other": 1}}
    assert schema.validate({"spec": {"name": "toolong", "other": 2}}, old) == []
    assert [c.field for c in schema.validate({"spec": {"name": "toolong2", "other": 2}}, old)] == [
        "spec.name",
        "<nil>",
    ]
    assert [c.message for c in schema.validate({"spec": {"name": "bad"}}, {"spec": {"name": "bad"}})] == []
    assert [c.message for c in schema.validate({"spec": {"name": "bad"}}, None)] == [
        "Invalid value: \"string\": failed rule: self != 'bad'"
    ]


def test_property_names_are_escaped_as_upstream() -> None:
    rule = (
        "self.x__dash__y == 1 && self.__if__ == 2 && self.a__underscores__b == 3 && self.labels['k-1'] == 'v'"
    )
    schema = CustomResourceSchema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "x-kubernetes-validations": [{"rule": rule}],
                    "properties": {
                        "x-y": {"type": "integer"},
                        "if": {"type": "integer"},
                        "a__b": {"type": "integer"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                }
            },
        }
    )
    good = {"spec": {"x-y": 1, "if": 2, "a__b": 3, "labels": {"k-1": "v"}}}
    assert schema.validate(good, None) == []
    bad = {"spec": {"x-y": 2, "if": 2, "a__b": 3, "labels": {"k-1": "v"}}}
    assert [c.message for c in schema.validate(bad, None)] == [
        f'Invalid value: "object": failed rule: {rule}'
    ]
