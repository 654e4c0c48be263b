"""Label and field selector parsing, matching and formatting against upstream behaviour."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api import errors
from controlplane.api.selectors import (
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    Operator,
    Requirement,
    escape_field_value,
    format_label_selector,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
    unescape_field_value,
)

# --- label selectors: examples ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app!=web", {"app": "web"}, False),
        ("app!=web", {}, True),
        ("app in (web,db)", {"app": "db"}, True),
        ("app notin (web,db)", {"app": "db"}, False),
        ("app notin (web,db)", {}, True),
        ("app", {"app": ""}, True),
        ("!app", {"app": ""}, False),
        ("!app", {"other": "x"}, True),
        ("tier>3", {"tier": "4"}, True),
        ("tier>3", {"tier": "3"}, False),
        ("tier<3", {"tier": "-1"}, True),
        ("tier<3", {"tier": "abc"}, False),
        ("a=1, b in ( x , y ) ,!c", {"a": "1", "b": "y"}, True),
        ("a=1,b in (x,y),!c", {"a": "1", "b": "y", "c": "z"}, False),
        ("env=", {"env": ""}, True),
        ("env in (,prod)", {"env": ""}, True),
        ("", {"anything": "x"}, True),
    ],
)
def test_parse_and_match(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_in_and_notin_are_values_in_value_position() -> None:
    sel = parse_label_selector("x in (in,notin)")
    assert sel.matches({"x": "notin"})
    assert str(sel) == "x in (in,notin)"


def test_string_form_is_sorted_by_key_and_values() -> None:
    sel = parse_label_selector("z notin (b,a),a=1,!m,k")
    assert str(sel) == "a=1,k,!m,z notin (a,b)"


def test_empty_and_nothing() -> None:
    assert parse_label_selector("").empty
    assert label_selector_from_dict({}).empty
    nothing = label_selector_from_dict(None)
    assert not nothing.empty
    assert not nothing.matches({})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a in x", "unable to parse requirement: found 'x' expected: '('"),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        (
            "a>x",
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, "
            "the value must be an integer",
        ),
    ],
)
def test_parse_errors_are_worded_like_upstream(text: str, message: str) -> None:
    with pytest.raises(errors.BadRequest) as exc:
        parse_label_selector(text)
    assert exc.value.message == message
    assert exc.value.to_status()["code"] == 400


def test_invalid_key_uses_nil_path_like_upstream() -> None:
    with pytest.raises(errors.BadRequest) as exc:
        parse_label_selector("-abc=x")
    assert exc.value.message.startswith(
        'unable to parse requirement: <nil>: Invalid value: "-abc": name part must'
    )


def test_invalid_value_names_the_key() -> None:
    with pytest.raises(errors.BadRequest) as exc:
        parse_label_selector("app=a@b")
    assert exc.value.message.startswith(
        'unable to parse requirement: values[0][app]: Invalid value: "a@b": a valid label must be an empty string'
    )


# --- metav1.LabelSelector ---------------------------------------------------------------------


def test_from_dict_match_labels_and_expressions() -> None:
    sel = label_selector_from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"},
            ],
        }
    )
    assert sel.matches({"app": "web", "tier": "fe", "zone": "a"})
    assert not sel.matches({"app": "web", "tier": "fe", "zone": "a", "canary": "1"})
    assert format_label_selector(sel) == "app=web,!canary,tier in (be,fe),zone"


def test_from_dict_rejects_bad_operator_and_empty_in() -> None:
    with pytest.raises(errors.BadRequest) as exc:
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
    assert exc.value.message == '"Gt" is not a valid label selector operator'
    with pytest.raises(errors.BadRequest) as exc:
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "In"}]})
    assert (
        exc.value.message
        == "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
    )


def test_format_label_selector_accepts_dicts() -> None:
    assert format_label_selector({"matchLabels": {"b": "2", "a": "1"}}) == "a=1,b=2"
    assert format_label_selector(None) == ""


# --- label selectors: properties --------------------------------------------------------------

_names = st.from_regex(r"[a-z]([a-z0-9.-]{0,8}[a-z0-9])?", fullmatch=True)
# A key prefix is a DNS subdomain (no empty labels such as "a..b"); the name part may hold dots.
_prefixes = st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
_keys = st.one_of(_names, st.builds(lambda p, n: f"{p}.io/{n}", _prefixes, _names))
_values = st.from_regex(r"([A-Za-z0-9]([A-Za-z0-9_.-]{0,6}[A-Za-z0-9])?)?", fullmatch=True)


@st.composite
def _requirements(draw: st.DrawFn) -> Requirement:
    key = draw(_keys)
    op = draw(st.sampled_from(list(Operator)))
    if op in (Operator.IN, Operator.NOT_IN):
        vals = draw(st.lists(_values, min_size=1, max_size=3))
    elif op in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        vals = []
    elif op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        # Negative numbers are not valid label values, so upstream rejects "k>-1" too.
        vals = [str(draw(st.integers(0, 100)))]
    else:
        vals = [draw(_values)]
    return Requirement.build(key, op, vals)


def _reference(req: Requirement, labels: dict[str, str]) -> bool:
    present = req.key in labels
    value = labels.get(req.key)
    if req.operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN):
        return present and value in req.values
    if req.operator in (Operator.NOT_EQUALS, Operator.NOT_IN):
        return not present or value not in req.values
    if req.operator is Operator.EXISTS:
        return present
    if req.operator is Operator.DOES_NOT_EXIST:
        return not present
    if value is None or not re.fullmatch(r"[+-]?[0-9]+", value):
        return False
    have = int(value)
    want = int(req.values[0])
    return have > want if req.operator is Operator.GREATER_THAN else have < want


@settings(deadline=None, max_examples=150)
@given(st.lists(_requirements(), max_size=4))
def test_formatted_selector_parses_back_to_itself(reqs: list[Requirement]) -> None:
    sel = LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))
    again = parse_label_selector(str(sel))
    assert str(again) == str(sel)
    assert again.requirements == sel.requirements


@settings(deadline=None, max_examples=150)
@given(
    st.lists(_requirements(), max_size=4),
    st.dictionaries(_keys, st.one_of(_values, st.integers(-5, 5).map(str)), max_size=4),
)
def test_matching_agrees_with_reference(reqs: list[Requirement], labels: dict[str, str]) -> None:
    # Bias towards hits: give some labels the keys the selector asks about.
    for req in reqs[:2]:
        labels.setdefault(req.key, req.values[0] if req.values else "x")
    sel = parse_label_selector(str(LabelSelector(tuple(reqs))))
    assert sel.matches(labels) == all(_reference(r, labels) for r in reqs)


# --- field selectors --------------------------------------------------------------------------


def test_field_selector_parse_and_match() -> None:
    sel = parse_field_selector("spec.nodeName=node-1,status.phase!=Failed")
    assert sel.matches({"spec.nodeName": "node-1", "status.phase": "Running"})
    assert not sel.matches({"spec.nodeName": "node-1", "status.phase": "Failed"})
    assert not sel.matches({"spec.nodeName": "node-2"})
    assert parse_field_selector("a==b").requirements == (FieldRequirement("a", "=", "b"),)
    assert sel.requires_exact_match("spec.nodeName") == "node-1"


def test_missing_field_reads_as_empty() -> None:
    assert parse_field_selector("spec.nodeName=").matches({})
    assert parse_field_selector("spec.nodeName!=").matches({"spec.nodeName": "n"})


def test_field_selector_escapes() -> None:
    sel = parse_field_selector(r"metadata.name=a\,b\=c\\d")
    assert sel.requirements == (FieldRequirement("metadata.name", "=", "a,b=c\\d"),)
    assert str(sel) == r"metadata.name=a\,b\=c\\d"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name", "invalid selector: 'name'; can't understand 'name'"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
        (r"a=\q", r"invalid field selector: invalid escape sequence: \q"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
    ],
)
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(errors.BadRequest) as exc:
        parse_field_selector(text)
    assert exc.value.message == message


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=20))
def test_field_value_escape_round_trip(value: str) -> None:
    assert unescape_field_value(escape_field_value(value)) == value
    sel = parse_field_selector("metadata.name=" + escape_field_value(value))
    assert sel == FieldSelector((FieldRequirement("metadata.name", "=", value),))
