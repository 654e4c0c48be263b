"""CRD schema validation: keywords refused, NonStructuralSchema rules, defaults, CEL rules."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api.crd import structural

FLD = "spec.versions[0].schema.openAPIV3Schema"
P = FLD + ".properties[spec]"


def _errs(schema: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c.reason, c.field, c.message) for c in structural.validate_crd_schema(schema, FLD)]


def _spec(spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"spec": spec}}


def test_a_good_schema_has_no_errors() -> None:
    schema = _spec(
        {
            "type": "object",
            "required": ["size"],
            "x-kubernetes-validations": [{"rule": "self.size >= 0", "message": "neg"}],
            "properties": {
                "size": {"type": "integer", "default": 1, "minimum": 0},
                "port": {
                    "x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                },
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}},
                        "x-kubernetes-validations": [{"rule": "self.name == oldSelf.name"}],
                    },
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                },
            },
        }
    )
    schema["properties"]["metadata"] = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 10}},
    }
    assert _errs(schema) == []


CASES = [
    (
        {"properties": {"spec": {"type": "object"}}},
        [("FieldValueRequired", FLD + ".type", "Required value: must not be empty at the root")],
    ),
    (
        {"type": "string"},
        [("FieldValueInvalid", FLD + ".type", 'Invalid value: "string": must be object at the root')],
    ),
    (
        _spec({"properties": {"a": {"type": "string"}}}),
        [
            (
                "FieldValueRequired",
                P + ".type",
                "Required value: must not be empty for specified object fields",
            )
        ],
    ),
    (
        _spec({"type": "array"}),
        [("FieldValueRequired", P + ".items", "Required value: must be specified")],
    ),
    (
        _spec({"type": "array", "items": {}}),
        [
            (
                "FieldValueRequired",
                P + ".items.type",
                "Required value: must not be empty for specified array items",
            )
        ],
    ),
    (
        _spec({"type": "object", "anyOf": [{"type": "object"}]}),
        [("FieldValueForbidden", P + ".anyOf[0].type", "Forbidden: must be empty to be structural")],
    ),
    (
        _spec({"type": "object", "oneOf": [{"properties": {"a": {"description": "x"}}}]}),
        [
            (
                "FieldValueForbidden",
                P + ".oneOf[0].properties[a].description",
                "Forbidden: must be empty to be structural",
            ),
            (
                "FieldValueRequired",
                P + ".properties[a]",
                f"Required value: because it is defined in {P}.oneOf[0].properties[a]",
            ),
        ],
    ),
    (
        _spec({"type": "string", "not": {"nullable": True, "default": "x"}}),
        [
            ("FieldValueForbidden", P + ".not.default", "Forbidden: must be undefined to be structural"),
            ("FieldValueForbidden", P + ".not.nullable", "Forbidden: must be false to be structural"),
        ],
    ),
    (
        {
            "type": "object",
            "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}},
        },
        [
            (
                "FieldValueForbidden",
                FLD + ".properties[metadata]",
                "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
            )
        ],
    ),
    (
        _spec({"type": "object", "x-kubernetes-embedded-resource": True}),
        [
            (
                "FieldValueRequired",
                P + ".properties",
                "Required value: must not be empty if x-kubernetes-embedded-resource is true without "
                "x-kubernetes-preserve-unknown-fields",
            )
        ],
    ),
    (
        _spec(
            {
                "type": "string",
                "x-kubernetes-embedded-resource": True,
                "x-kubernetes-preserve-unknown-fields": True,
            }
        ),
        [
            (
                "FieldValueInvalid",
                P + ".type",
                'Invalid value: "string": must be object if x-kubernetes-embedded-resource is true',
            )
        ],
    ),
    (
        _spec(
            {
                "type": "object",
                "x-kubernetes-int-or-string": True,
                "x-kubernetes-preserve-unknown-fields": True,
            }
        ),
        [
            (
                "FieldValueInvalid",
                P + ".x-kubernetes-preserve-unknown-fields",
                "Invalid value: true: must be false if x-kubernetes-int-or-string is true",
            )
        ],
    ),
    (
        _spec({"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        [
            (
                "FieldValueForbidden",
                P + ".uniqueItems",
                "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        ],
    ),
    (
        _spec(
            {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            }
        ),
        [
            (
                "FieldValueForbidden",
                P + ".additionalProperties",
                "Forbidden: additionalProperties and properties are mutual exclusive",
            )
        ],
    ),
    (
        _spec({"type": "string", "pattern": "^(?!x)"}),
        [
            (
                "FieldValueInvalid",
                P + ".pattern",
                'Invalid value: "^(?!x)": must be a valid regular expression, but isn\'t: '
                "error parsing regexp: invalid or unsupported Perl syntax: `(?!`",
            )
        ],
    ),
    (
        _spec({"type": "foo"}),
        [
            (
                "FieldValueNotSupported",
                P + ".type",
                'Unsupported value: "foo": supported values: "array", "boolean", "integer", "number", "object", "string"',
            )
        ],
    ),
    (
        _spec({"type": "object", "$ref": "#/x", "patternProperties": {"a": {}}}),
        [
            (
                "FieldValueForbidden",
                P + ".patternProperties",
                "Forbidden: patternProperties is not supported",
            ),
            ("FieldValueForbidden", P + ".$ref", "Forbidden: $ref is not supported"),
        ],
    ),
    (
        _spec({"type": "string", "x-kubernetes-list-type": "set"}),
        [
            (
                "FieldValueInvalid",
                P + ".type",
                'Invalid value: "string": must be array if x-kubernetes-list-type is specified',
            )
        ],
    ),
    (
        _spec({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "bag"}),
        [
            (
                "FieldValueNotSupported",
                P + ".x-kubernetes-list-type",
                'Unsupported value: "bag": supported values: "atomic", "set", "map"',
            )
        ],
    ),
    (
        _spec({"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "map"}),
        [
            (
                "FieldValueRequired",
                P + ".x-kubernetes-list-map-keys",
                "Required value: must not be empty if x-kubernetes-list-type is map",
            )
        ],
    ),
    (
        _spec(
            {
                "type": "array",
                "items": {"type": "object", "properties": {"a": {"type": "string"}}},
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["b"],
            }
        ),
        [
            (
                "FieldValueInvalid",
                P + ".x-kubernetes-list-map-keys",
                'Invalid value: []interface {}{"b"}: entries must all be names of item properties',
            )
        ],
    ),
    (
        _spec({"type": "object", "x-kubernetes-map-type": "weird"}),
        [
            (
                "FieldValueNotSupported",
                P + ".x-kubernetes-map-type",
                'Unsupported value: "weird": supported values: "atomic", "granular"',
            )
        ],
    ),
    (
        _spec({"type": "object", "x-kubernetes-preserve-unknown-fields": False}),
        [
            (
                "FieldValueInvalid",
                P + ".x-kubernetes-preserve-unknown-fields",
                "Invalid value: false: must be true or undefined",
            )
        ],
    ),
    (
        {"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}},
        [
            (
                "FieldValueForbidden",
                FLD + ".properties[metadata].default",
                "Forbidden: must not be set in top-level metadata",
            )
        ],
    ),
    (
        _spec({"type": "integer", "default": "one"}),
        [
            (
                "FieldValueTypeInvalid",
                P + ".default",
                'Invalid value: "string":  in body must be of type integer: "string"',
            )
        ],
    ),
    (
        _spec({"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": "x", "b": 1}}),
        [
            (
                "FieldValueInvalid",
                P + ".default",
                'Invalid value: map[string]interface {}{"a":"x", "b":1}: must not have unknown fields',
            )
        ],
    ),
]


@pytest.mark.parametrize(("schema", "expected"), CASES)
def test_schema_errors(schema: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    assert _errs(schema) == expected


RULE_CASES = [
    ({"rule": ""}, [("FieldValueRequired", ".rule", "Required value: rule is not specified")]),
    (
        {"rule": "self.a", "message": "  "},
        [("FieldValueInvalid", ".message", 'Invalid value: "  ": message must be non-empty if specified')],
    ),
    (
        {"rule": "self.a\n&& true"},
        [
            (
                "FieldValueRequired",
                ".message",
                "Required value: message must be specified if rule contains line breaks",
            )
        ],
    ),
    (
        {"rule": "true", "reason": "Bogus"},
        [
            (
                "FieldValueNotSupported",
                ".reason",
                'Unsupported value: "Bogus": supported values: "FieldValueDuplicate", "FieldValueForbidden", '
                '"FieldValueInvalid", "FieldValueRequired"',
            )
        ],
    ),
    (
        {"rule": "true", "fieldPath": ".nope"},
        [("FieldValueInvalid", ".fieldPath", 'Invalid value: ".nope": fieldPath must be a valid path')],
    ),
    ({"rule": "true", "fieldPath": ".a"}, []),
    ({"rule": "self.a == oldSelf.a"}, []),
]


@pytest.mark.parametrize(("rule", "expected"), RULE_CASES)
def test_validation_rules(rule: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    schema = _spec(
        {"type": "object", "properties": {"a": {"type": "string"}}, "x-kubernetes-validations": [rule]}
    )
    base = P + ".x-kubernetes-validations[0]"
    assert _errs(schema) == [(r, base + f, m) for r, f, m in expected]


def test_rule_that_does_not_compile() -> None:
    schema = _spec({"type": "object", "x-kubernetes-validations": [{"rule": "self.a +"}]})
    [(reason, field, message)] = _errs(schema)
    assert (reason, field) == ("FieldValueInvalid", P + ".x-kubernetes-validations[0].rule")
    assert message.startswith('Invalid value: "apiextensions.ValidationRule{Rule:\\"self.a +\\"')
    assert "compilation failed: " in message


def test_old_self_under_an_atomic_list_is_refused() -> None:
    schema = _spec(
        {
            "type": "array",
            "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]},
        }
    )
    assert _errs(schema) == [
        (
            "FieldValueInvalid",
            P + ".items.x-kubernetes-validations[0].rule",
            f'Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema within {P}',
        )
    ]


def test_int_or_string_anyof_pattern_is_structural() -> None:
    schema = _spec(
        {
            "x-kubernetes-int-or-string": True,
            "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"pattern": "^[0-9]+%?$"}],
        }
    )
    assert _errs(schema) == []


def test_list_map_keys_must_be_required_or_defaulted() -> None:
    schema = _spec(
        {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name", "proto"],
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "proto": {"type": "string", "nullable": True}},
            },
        }
    )
    assert _errs(schema) == [
        (
            "FieldValueRequired",
            P + ".items.properties[proto].default",
            "Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
        ),
        (
            "FieldValueForbidden",
            P + ".items.properties[proto].nullable",
            "Forbidden: this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
        ),
    ]


def test_defaults_are_checked_against_cel_rules() -> None:
    schema = _spec(
        {
            "type": "integer",
            "default": 5,
            "x-kubernetes-validations": [{"rule": "self < 3", "message": "small"}],
        }
    )
    assert _errs(schema) == [("FieldValueInvalid", P + ".default", 'Invalid value: "integer": small')]


def test_defaults_of_embedded_resources_are_checked() -> None:
    schema = _spec(
        {
            "type": "object",
            "x-kubernetes-embedded-resource": True,
            "x-kubernetes-preserve-unknown-fields": True,
            "default": {"kind": "Pod"},
        }
    )
    assert _errs(schema) == [("FieldValueRequired", P + ".default.apiVersion", "Required value")]


def test_nested_default_inside_a_default_is_not_required_to_match() -> None:
    schema = _spec(
        {
            "type": "object",
            "default": {"a": "x"},
            "properties": {"a": {"type": "string", "enum": ["x", "y"], "default": "y"}},
        }
    )
    assert _errs(schema) == []


def test_rule_selecting_an_undefined_field_is_refused() -> None:
    schema = _spec(
        {
            "type": "object",
            "properties": {
                "a": {"type": "string"},
                "m": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "x-kubernetes-validations": [
                {"rule": "self.a.startsWith('x') && self.m.any == 'y'"},
                {"rule": "has(self.nope)"},
            ],
        }
    )
    [(reason, field, message)] = _errs(schema)
    assert (reason, field) == ("FieldValueInvalid", P + ".x-kubernetes-validations[1].rule")
    assert message.endswith(
        ": compilation failed: ERROR: <input>:1:9: undefined field 'nope'\n | has(self.nope)\n | ........^"
    )
