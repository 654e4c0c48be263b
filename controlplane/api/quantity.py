"""`resource.Quantity`: parsing, exact arithmetic and the canonical string upstream prints.

A quantity keeps its value exactly (a Fraction rounded up to nano precision on parse, as
upstream's ParseQuantity does) and the format its suffix implied (BinarySI for Ki/Mi/...,
DecimalSI for m/k/M/..., DecimalExponent for e3). `str()` gives upstream's canonical form, the
one its messages show: "2000m" prints as "2", "1024Mi" as "1Gi", "1.5" as "1500m".
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

__all__ = [
    "QUANTITY_FORMAT_ERROR",
    "Quantity",
    "ResourceList",
    "add",
    "mask",
    "parse_quantity",
    "parse_resource_list",
    "pretty_print",
    "subtract_non_negative",
]

Format = Literal["BinarySI", "DecimalSI", "DecimalExponent"]

QUANTITY_FORMAT_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)

_PATTERN = re.compile(r"^([+-]?)([0-9]*\.?[0-9]*)((?:[eE][+-]?[0-9]+)|[KMGTPE]i|[numkMGTPE]|)$")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_SUFFIX = {0: "", **{exp: suffix for suffix, exp in _BINARY.items()}}
_NANO = Fraction(1, 10**9)


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: Format = "DecimalSI"

    @classmethod
    def of(cls, value: int | Fraction, fmt: Format = "DecimalSI") -> Quantity:
        return cls(Fraction(value), fmt)

    def __str__(self) -> str:
        return _canonical(self.value, self.format)

    def __add__(self, other: Quantity) -> Quantity:
        # Upstream's Add keeps the receiver's format unless the receiver is zero.
        fmt = other.format if self.value == 0 else self.format
        return Quantity(self.value + other.value, fmt)

    def __sub__(self, other: Quantity) -> Quantity:
        fmt = other.format if self.value == 0 else self.format
        return Quantity(self.value - other.value, fmt)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value

    def __gt__(self, other: Quantity) -> bool:
        return self.value > other.value

    def __ge__(self, other: Quantity) -> bool:
        return self.value >= other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    @property
    def sign(self) -> int:
        return (self.value > 0) - (self.value < 0)

    def milli_value(self) -> int:
        """Rounded up, as upstream's MilliValue."""
        return math.ceil(self.value * 1000)

    def int_value(self) -> int:
        """Rounded up, as upstream's Value."""
        return math.ceil(self.value)


ResourceList = dict[str, Quantity]


def parse_quantity(raw: Any) -> Quantity:
    """A quantity from its JSON form (a string, or a bare number as Go's decoder accepts)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(QUANTITY_FORMAT_ERROR)  # noqa: TRY004 - bad input, reported like a bad string
    # A cluster uses few distinct quantities ("100m", "500Mi"), and parsing works in Fractions:
    # every pod create (QoS class, quota, LimitRange) would otherwise parse them again. Quantity
    # is frozen, so one instance is safely shared. Floatness is in the key: 1 and 1.0 are equal keys.
    # Long strings are parsed uncached, so a client cannot make the cache hold megabytes.
    if isinstance(raw, str) and len(raw) > _CACHED_LENGTH:
        return _parse(raw)
    return _parse_cached(isinstance(raw, float), raw)


_CACHED_LENGTH = 64


@functools.lru_cache(maxsize=4096)
def _parse_cached(is_float: bool, raw: str | int | float) -> Quantity:
    del is_float  # only part of the cache key
    return _parse(raw)


def _parse(raw: str | int | float) -> Quantity:
    text = str(raw).strip() if not isinstance(raw, float) else repr(raw)
    match = _PATTERN.match(text)
    if match is None or match.group(2) in ("", "."):
        raise ValueError(QUANTITY_FORMAT_ERROR)
    sign, number, suffix = match.groups()
    value = Fraction(number)
    fmt: Format
    if suffix in _BINARY:
        value *= 2 ** _BINARY[suffix]
        fmt = "BinarySI"
    elif len(suffix) > 1:  # e3, E-2: an exponent, not the E (exa) suffix
        value *= Fraction(10) ** int(suffix[1:])
        fmt = "DecimalExponent"
    else:
        value *= Fraction(10) ** _DECIMAL[suffix]
        fmt = "DecimalSI"
    # Precision below a nano unit is rounded up, away from zero, as upstream does.
    value = Fraction(math.ceil(value / _NANO)) * _NANO
    return Quantity(-value if sign == "-" else value, fmt)


def parse_resource_list(raw: Any) -> ResourceList:
    """`{"cpu": "500m", ...}` as quantities; raises ValueError on a malformed one."""
    if not isinstance(raw, Mapping):
        return {}
    return {str(name): parse_quantity(value) for name, value in raw.items()}


def _strip_factors(number: int, base: int) -> tuple[int, int]:
    times = 0
    while number != 0 and number % base == 0:
        number //= base
        times += 1
    return number, times


def _canonical(value: Fraction, fmt: Format) -> str:
    if value == 0:
        return "0"
    if fmt == "BinarySI" and (abs(value) < 1024 or value.denominator != 1):
        # Small or fractional binary values print in decimal: no rounding, no surprise.
        fmt = "DecimalSI"
    if fmt == "BinarySI":
        mantissa, times = _strip_factors(int(value), 1024)
        exponent = times * 10
        while exponent > 60:
            mantissa *= 1024
            exponent -= 10
        return f"{mantissa}{_BINARY_SUFFIX[exponent]}"
    scaled = value * 10**9
    mantissa = math.ceil(scaled) if scaled.denominator != 1 else int(scaled)
    mantissa, times = _strip_factors(mantissa, 10)
    exponent = times - 9
    # The exponent must be a multiple of three (Python's % keeps it non-negative).
    if exponent % 3 == 1:
        mantissa, exponent = mantissa * 10, exponent - 1
    elif exponent % 3 == 2:
        mantissa, exponent = mantissa * 100, exponent - 2
    if fmt == "DecimalExponent":
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    while exponent > 18:
        mantissa *= 1000
        exponent -= 3
    return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"


def add(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    """Upstream's quota.Add: every key of either list, summed where both have it."""
    out = dict(a)
    for name, quantity in b.items():
        out[name] = out[name] + quantity if name in out else quantity
    return out


def subtract_non_negative(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    """Upstream's quota.SubtractWithNonNegativeResult."""
    out: ResourceList = {}
    for name, quantity in a.items():
        diff = quantity - b[name] if name in b else quantity
        out[name] = diff if diff.sign > 0 else Quantity(Fraction(0), quantity.format)
    for name, quantity in b.items():
        if name not in a:
            out[name] = Quantity(Fraction(0), quantity.format)
    return out


def mask(resources: Mapping[str, Quantity], names: Iterable[str]) -> ResourceList:
    wanted = set(names)
    return {name: q for name, q in resources.items() if name in wanted}


def pretty_print(resources: Mapping[str, Quantity]) -> str:
    """`requests.cpu=500m,requests.memory=1Gi`: sorted by name, as upstream's quota messages."""
    return ",".join(f"{name}={resources[name]}" for name in sorted(resources))
