"""Schema keywords on custom objects: one row per keyword, valid and invalid, exact causes."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api.crd import CustomResourceSchema
from controlplane.api.errors import Cause


def _schema(field: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"spec": {"type": "object", "properties": {"f": field}}}}


def _causes(field: dict[str, Any], value: Any) -> list[tuple[str, str, str]]:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"f": value}}
    return [(c.reason, c.field, c.message) for c in CustomResourceSchema(_schema(field)).validate(obj, None)]


VALID = [
    ({"type": "string"}, "x"),
    ({"type": "integer"}, 3),
    ({"type": "integer"}, 3.0),
    ({"type": "number"}, 3),
    ({"type": "number"}, 2.5),
    ({"type": "boolean"}, False),
    ({"type": "object"}, {}),
    ({"type": "array", "items": {"type": "string"}}, ["a"]),
    ({"type": "string", "nullable": True}, None),
    ({"type": "string", "enum": ["a", "b"]}, "b"),
    ({"type": "integer", "enum": [1, 2]}, 2),
    ({"type": "string", "pattern": "^[a-z]+$"}, "abc"),
    ({"type": "string", "minLength": 2, "maxLength": 3}, "abc"),
    ({"type": "integer", "minimum": 1, "maximum": 3}, 3),
    ({"type": "integer", "minimum": 1, "exclusiveMinimum": True}, 2),
    ({"type": "integer", "multipleOf": 5}, 15),
    ({"type": "number", "multipleOf": 0.5}, 1.5),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2}, [1, 2]),
    (
        {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": {"type": "string"},
        },
        {"a": "b"},
    ),
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, [1, 2]),
    ({"x-kubernetes-int-or-string": True}, 3),
    ({"x-kubernetes-int-or-string": True}, "50%"),
    ({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}, {"a": ""}),
    ({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, {"any": {"thing": [1]}}),
]


@pytest.mark.parametrize(("field", "value"), VALID)
def test_valid_values(field: dict[str, Any], value: Any) -> None:
    assert _causes(field, value) == []


INVALID = [
    (
        {"type": "integer"},
        "string",
        [
            (
                "FieldValueTypeInvalid",
                "spec.f",
                'Invalid value: "string": spec.f in body must be of type integer: "string"',
            )
        ],
    ),
    (
        {"type": "integer"},
        1.5,
        [
            (
                "FieldValueTypeInvalid",
                "spec.f",
                'Invalid value: "number": spec.f in body must be of type integer: "number"',
            )
        ],
    ),
    (
        {"type": "string"},
        None,
        [
            (
                "FieldValueTypeInvalid",
                "spec.f",
                'Invalid value: "null": spec.f in body must be of type string: "null"',
            )
        ],
    ),
    (
        {"type": "boolean"},
        "true",
        [
            (
                "FieldValueTypeInvalid",
                "spec.f",
                'Invalid value: "string": spec.f in body must be of type boolean: "string"',
            )
        ],
    ),
    (
        {"type": "array", "items": {"type": "string"}},
        {"a": 1},
        [
            (
                "FieldValueTypeInvalid",
                "spec.f",
                'Invalid value: "object": spec.f in body must be of type array: "object"',
            )
        ],
    ),
    (
        {"x-kubernetes-int-or-string": True},
        True,
        [
            (
                "FieldValueTypeInvalid",
                "spec.f",
                'Invalid value: "boolean": spec.f in body must be of type integer,string: "boolean"',
            )
        ],
    ),
    (
        {"type": "string", "enum": ["a", "b"]},
        "c",
        [("FieldValueNotSupported", "spec.f", 'Unsupported value: "c": supported values: "a", "b"')],
    ),
    (
        {"type": "integer", "enum": [1, 2]},
        3,
        [("FieldValueNotSupported", "spec.f", 'Unsupported value: 3: supported values: "1", "2"')],
    ),
    (
        {"type": "string", "pattern": "^[a-z]+$"},
        "ABC",
        [("FieldValueInvalid", "spec.f", "Invalid value: \"ABC\": spec.f in body should match '^[a-z]+$'")],
    ),
    (
        {"type": "string", "minLength": 2},
        "a",
        [
            (
                "FieldValueInvalid",
                "spec.f",
                'Invalid value: "a": spec.f in body should be at least 2 chars long',
            )
        ],
    ),
    (
        {"type": "string", "maxLength": 2},
        "abc",
        [("FieldValueTooLong", "spec.f", "Too long: may not be more than 2 bytes")],
    ),
    (
        {"type": "integer", "maximum": 3},
        4,
        [
            (
                "FieldValueInvalid",
                "spec.f",
                "Invalid value: 4: spec.f in body should be less than or equal to 3",
            )
        ],
    ),
    (
        {"type": "integer", "maximum": 3, "exclusiveMaximum": True},
        3,
        [("FieldValueInvalid", "spec.f", "Invalid value: 3: spec.f in body should be less than 3")],
    ),
    (
        {"type": "integer", "minimum": 1},
        0,
        [
            (
                "FieldValueInvalid",
                "spec.f",
                "Invalid value: 0: spec.f in body should be greater than or equal to 1",
            )
        ],
    ),
    (
        {"type": "number", "minimum": 1.5, "exclusiveMinimum": True},
        1.5,
        [("FieldValueInvalid", "spec.f", "Invalid value: 1.5: spec.f in body should be greater than 1.5")],
    ),
    (
        {"type": "integer", "multipleOf": 5},
        7,
        [("FieldValueInvalid", "spec.f", "Invalid value: 7: spec.f in body should be a multiple of 5")],
    ),
    (
        {"type": "array", "items": {"type": "integer"}, "minItems": 2},
        [1],
        [("FieldValueInvalid", "spec.f", "Invalid value: 1: spec.f in body should have at least 2 items")],
    ),
    (
        {"type": "array", "items": {"type": "integer"}, "maxItems": 1},
        [1, 2],
        [("FieldValueTooMany", "spec.f", "Too many: 2: must have at most 1 item")],
    ),
    (
        {"type": "object", "minProperties": 2, "additionalProperties": {"type": "string"}},
        {"a": "b"},
        [
            (
                "FieldValueInvalid",
                "spec.f",
                "Invalid value: 1: spec.f in body should have at least 2 properties",
            )
        ],
    ),
    (
        {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}},
        {"a": "b", "c": "d"},
        [("FieldValueTooMany", "spec.f", "Too many: 2: must have at most 1 item")],
    ),
    (
        {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
        [1, 1],
        [("FieldValueInvalid", "spec.f", 'Invalid value: "": spec.f in body shouldn\'t contain duplicates')],
    ),
    (
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}},
        {},
        [("FieldValueRequired", "spec.f.a", "Required value")],
    ),
    (
        {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        [{"n": 1}, {"n": "x"}],
        [
            (
                "FieldValueTypeInvalid",
                "spec.f[1].n",
                'Invalid value: "string": spec.f[1].n in body must be of type integer: "string"',
            )
        ],
    ),
    (
        {"type": "object", "additionalProperties": {"type": "integer"}},
        {"k": "v"},
        [
            (
                "FieldValueTypeInvalid",
                "spec.f.k",
                'Invalid value: "string": spec.f.k in body must be of type integer: "string"',
            )
        ],
    ),
    (
        {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        ["a", "b", "a"],
        [("FieldValueDuplicate", "spec.f[2]", 'Duplicate value: "a"')],
    ),
    (
        {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name", "proto"],
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "proto": {"type": "string"}},
            },
        },
        [{"name": "a", "proto": "TCP"}, {"name": "a", "proto": "UDP"}, {"name": "a", "proto": "TCP"}],
        [
            (
                "FieldValueDuplicate",
                "spec.f[2]",
                'Duplicate value: map[string]interface {}{"name":"a", "proto":"TCP"}',
            )
        ],
    ),
    (
        {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
        [{}],
        [("FieldValueRequired", "spec.f[0].name", "Required value")],
    ),
    (
        {"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "string"}},
        ["a", "a"],
        [],
    ),
]


@pytest.mark.parametrize(("field", "value", "expected"), INVALID)
def test_invalid_values(field: dict[str, Any], value: Any, expected: list[tuple[str, str, str]]) -> None:
    assert _causes(field, value) == expected


FORMATS = [
    ("date", "2024-02-29", "2024-02-30"),
    ("date-time", "2024-01-02T03:04:05Z", "2024-01-02 nope"),
    ("date-time", "2024-01-02T03:04:05.123+01:00", "24-01-02T03:04:05Z"),
    ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
    ("email", "a@example.com", "not-an-email"),
    ("hostname", "example.com", "-bad-.com"),
    ("ipv4", "10.0.0.1", "10.0.0.256"),
    ("ipv6", "fe80::1", "10.0.0.1"),
    ("cidr", "10.0.0.0/8", "10.0.0.0"),
    ("mac", "01:23:45:67:89:ab", "01:23:45"),
    ("uri", "https://example.com/x?y=1", "no scheme here"),
    ("byte", "aGVsbG8=", "not base64!"),
    ("duration", "1h30m", "forever"),
    ("duration", "3d", "3 parsecs"),
]


@pytest.mark.parametrize(("fmt", "good", "bad"), FORMATS)
def test_formats(fmt: str, good: str, bad: str) -> None:
    field = {"type": "string", "format": fmt}
    assert _causes(field, good) == []
    assert _causes(field, bad) == [
        (
            "FieldValueTypeInvalid",
            "spec.f",
            f'Invalid value: "{bad}": spec.f in body must be of type {fmt}: "{bad}"',
        )
    ]


def test_unknown_format_is_not_validated() -> None:
    assert _causes({"type": "string", "format": "k8s-short-name"}, "ANY THING") == []
    assert _causes({"type": "integer", "format": "int32"}, 2**40) == []


def test_type_error_blocks_cel_with_upstream_message() -> None:
    field = {"type": "integer", "x-kubernetes-validations": [{"rule": "self > 1"}]}
    assert _causes(field, "x")[-1] == (
        "FieldValueInvalid",
        "<nil>",
        'Invalid value: "null": some validation rules were not checked because the object was invalid; '
        "correct the existing errors to complete validation",
    )


def test_embedded_resource_checks_apiversion_kind_and_metadata() -> None:
    field = {
        "type": "object",
        "x-kubernetes-embedded-resource": True,
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert _causes(field, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}) == []
    assert _causes(field, {"metadata": {"name": "."}}) == [
        ("FieldValueRequired", "spec.f.apiVersion", "Required value"),
        ("FieldValueRequired", "spec.f.kind", "Required value"),
        ("FieldValueInvalid", "spec.f.metadata.name", "Invalid value: \".\": may not be '.'"),
    ]
    assert _causes(field, {"apiVersion": "a/b/c", "kind": "Bad_Kind"}) == [
        (
            "FieldValueInvalid",
            "spec.f.apiVersion",
            'Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c',
        ),
        (
            "FieldValueInvalid",
            "spec.f.kind",
            'Invalid value: "Bad_Kind": may have mixed case, but should otherwise match: '
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
            "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
            "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ),
    ]


def test_causes_are_cause_objects() -> None:
    obj = {"spec": {"f": "x"}}
    causes = CustomResourceSchema(_schema({"type": "integer"})).validate(obj, None)
    assert all(isinstance(c, Cause) for c in causes)
