"""The string formats CRD schemas validate (kube-openapi `strfmt.Default`, restricted as
apiextensions' `supportedFormats`). Unknown formats are not validated, as upstream strips them.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import re
from collections.abc import Callable

from controlplane.api.crd.regex import compile_pattern

__all__ = ["SUPPORTED_FORMATS", "check_format"]

_UUID = r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"
_UUID3 = r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"
_UUID4 = r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
_UUID5 = r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
_HOSTNAME = (
    r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|"
    r"([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}"
    r"([a-zA-Z\p{L}]){2,63})$"
)
_EMAIL = r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+$"
_HEXCOLOR = r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"
_RGBCOLOR = (
    r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,"
    r"\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$"
)
_SSN = r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"
_ISBN10 = r"^(?:[0-9]{9}X|[0-9]{10})$"
_ISBN13 = r"^(?:[0-9]{13})$"
_CREDITCARD = (
    r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|"
    r"3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11})$"
)
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_DURATION_UNITS = {
    "ns",
    "us",
    "µs",
    "ms",
    "s",
    "sec",
    "second",
    "seconds",
    "m",
    "min",
    "minute",
    "minutes",
    "h",
    "hr",
    "hour",
    "hours",
    "d",
    "day",
    "days",
    "w",
    "wk",
    "week",
    "weeks",
}
_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$")
_STRFMT_DURATION = re.compile(r"^(\d+)\s*([A-Za-zµ]+)$")


def _regex(pattern: str) -> Callable[[str], bool]:
    compiled = compile_pattern(pattern)
    return lambda value: compiled.search(value) is not None


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _ipv4(value: str) -> bool:
    return _ip(value) is not None and "." in value


def _ipv6(value: str) -> bool:
    return _ip(value) is not None and ":" in value


def _cidr(value: str) -> bool:
    addr, sep, prefix = value.partition("/")
    if not sep or not prefix.isdigit() or _ip(addr) is None:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _mac(value: str) -> bool:
    # net.ParseMAC: 6, 8 or 20 octets, as aa:bb, aa-bb or aabb.ccdd groups.
    if len(value) < 14:
        return False
    if value[2] in ":-":
        parts = value.split(value[2])
        return len(parts) in {6, 8, 20} and all(re.fullmatch(r"[0-9a-fA-F]{2}", p) for p in parts)
    if value[4] == ".":
        parts = value.split(".")
        return len(parts) in {3, 4, 10} and all(re.fullmatch(r"[0-9a-fA-F]{4}", p) for p in parts)
    return False


def _byte(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _date(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _datetime(value: str) -> bool:
    match = _DATETIME.match(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g or 0) for g in match.groups()[:6])
    try:
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


def _duration(value: str) -> bool:
    if _GO_DURATION.match(value):
        return True
    match = _STRFMT_DURATION.match(value.strip())
    return match is not None and match.group(2) in _DURATION_UNITS


def _uri(value: str) -> bool:
    # url.ParseRequestURI-like leniency: no control characters, no malformed escapes.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or " " in value:
        return False
    if re.search(r"%(?![0-9a-fA-F]{2})", value):
        return False
    return value.startswith("/") or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value) is not None


def _isbn(value: str) -> bool:
    stripped = value.replace("-", "").replace(" ", "")
    return re.fullmatch(_ISBN10, stripped) is not None or re.fullmatch(_ISBN13, stripped) is not None


_CHECKS: dict[str, Callable[[str], bool]] = {
    "bsonobjectid": lambda v: re.fullmatch(r"[0-9a-fA-F]{24}", v) is not None,
    "uri": _uri,
    "email": lambda v: re.match(_EMAIL, v) is not None,
    "hostname": lambda v: len(v) <= 255 and _regex(_HOSTNAME)(v),
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "cidr": _cidr,
    "mac": _mac,
    "uuid": _regex(_UUID),
    "uuid3": _regex(_UUID3),
    "uuid4": _regex(_UUID4),
    "uuid5": _regex(_UUID5),
    "isbn": _isbn,
    "isbn10": lambda v: re.fullmatch(_ISBN10, v.replace("-", "").replace(" ", "")) is not None,
    "isbn13": lambda v: re.fullmatch(_ISBN13, v.replace("-", "").replace(" ", "")) is not None,
    "creditcard": lambda v: re.fullmatch(_CREDITCARD, v.replace("-", "").replace(" ", "")) is not None,
    "ssn": lambda v: re.fullmatch(_SSN, v) is not None,
    "hexcolor": lambda v: re.fullmatch(_HEXCOLOR, v) is not None,
    "rgbcolor": lambda v: re.fullmatch(_RGBCOLOR, v) is not None,
    "byte": _byte,
    "password": lambda v: True,
    "date": _date,
    "duration": _duration,
    "datetime": _datetime,
    "date-time": _datetime,
}

SUPPORTED_FORMATS = frozenset(_CHECKS)


def check_format(fmt: str, value: str) -> bool:
    """True when `value` is valid for `fmt`, or `fmt` is not one upstream validates."""
    check = _CHECKS.get(fmt)
    return True if check is None else check(value)
