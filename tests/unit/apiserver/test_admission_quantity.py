"""resource.Quantity as admission reads and prints it: parse, canonical form, arithmetic."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api.quantity import (
    QUANTITY_FORMAT_ERROR,
    Quantity,
    add,
    mask,
    parse_quantity,
    pretty_print,
    subtract_non_negative,
)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("2000m", "2"),
        ("1500", "1500"),
        ("2000", "2k"),
        ("1.5", "1500m"),
        (".5", "500m"),
        ("100m", "100m"),
        ("1024Mi", "1Gi"),
        ("0.5Gi", "512Mi"),
        ("1536Mi", "1536Mi"),
        ("3.5Gi", "3584Mi"),
        ("1000Ki", "1000Ki"),
        ("512", "512"),
        ("12e3", "12e3"),
        ("1e-3", "1e-3"),
        ("1E", "1E"),
        ("0.1n", "1n"),
        ("0", "0"),
        ("-1", "-1"),
        (1, "1"),
        (0.5, "500m"),
    ],
)
def test_canonical_form_matches_upstream(raw: object, canonical: str) -> None:
    assert str(parse_quantity(raw)) == canonical


@pytest.mark.parametrize("raw", ["", "abc", "1Qi", "1.2.3", "--1", "1e", True, None, [1]])
def test_malformed_quantities_carry_the_upstream_message(raw: object) -> None:
    with pytest.raises(ValueError, match="quantities must match") as info:
        parse_quantity(raw)
    assert str(info.value) == QUANTITY_FORMAT_ERROR


def test_sums_keep_the_first_nonzero_format() -> None:
    assert str(parse_quantity("500m") + parse_quantity("500m")) == "1"
    assert str(parse_quantity("1Gi") + parse_quantity("512Mi")) == "1536Mi"
    assert str(parse_quantity("0") + parse_quantity("1Gi")) == "1Gi"
    assert parse_quantity("1") == parse_quantity("1000m")
    assert parse_quantity("1.1") > parse_quantity("1")
    assert parse_quantity("100m").milli_value() == 100
    assert parse_quantity("100m").int_value() == 1


def test_resource_list_helpers() -> None:
    a = {"cpu": parse_quantity("1"), "memory": parse_quantity("1Gi")}
    b = {"cpu": parse_quantity("500m"), "pods": Quantity.of(1)}
    assert pretty_print(add(a, b)) == "cpu=1500m,memory=1Gi,pods=1"
    assert pretty_print(subtract_non_negative(b, a)) == "cpu=0,memory=0,pods=1"
    assert pretty_print(mask(a, ["cpu", "other"])) == "cpu=1"


@given(
    st.fractions(min_value=-(10**12), max_value=10**12, max_denominator=10**9),
    st.sampled_from(["BinarySI", "DecimalSI", "DecimalExponent"]),
)
def test_the_canonical_string_parses_back_to_the_same_value(value: Fraction, fmt: str) -> None:
    rounded = Fraction(-((-value * 10**9) // 1), 10**9)  # parse rounds up to nano units
    quantity = Quantity(rounded, fmt)  # type: ignore[arg-type]
    assert parse_quantity(str(quantity)).value == rounded


def test_parsed_quantities_are_shared_and_keep_their_format() -> None:
    # The parse cache hands out one frozen Quantity per distinct input.
    assert parse_quantity("500Mi") is parse_quantity("500Mi")
    assert parse_quantity("500Mi").format == "BinarySI"
    # 1 and 1.0 are equal dict keys; the cache must not give one the other's result.
    assert str(parse_quantity(1)) == "1"
    assert str(parse_quantity(1.0)) == "1"
    assert parse_quantity(1.5) == Quantity(Fraction(3, 2))


def test_a_long_quantity_parses_without_being_cached() -> None:
    long_text = "1" + "0" * 100
    assert parse_quantity(long_text).value == 10**100
    assert parse_quantity(long_text) is not parse_quantity(long_text)


def test_a_bad_quantity_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="quantities must match"):
            parse_quantity("12Qi")
