"""Object-name rules: `generateName` expansion and the upstream string validators.

The validators mirror `k8s.io/apimachinery/pkg/util/validation` (as of v1.33): each returns the
list of upstream error strings, empty when the value is valid, so callers can wrap every string
in a field error exactly as upstream does. The `name_is_*` helpers are the per-kind
`ValidateNameFunc`s, which also accept a `generateName` prefix.
"""

from __future__ import annotations

import os
import random as _random
import re
from collections.abc import Callable

__all__ = [
    "GENERATED_RANDOM_LENGTH",
    "MAX_GENERATED_NAME_LENGTH",
    "NameValidator",
    "generate_name",
    "inclusive_range_error",
    "is_config_map_key",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_path_segment_name",
    "is_path_segment_prefix",
    "is_qualified_name",
    "is_valid_ip",
    "is_valid_label_value",
    "is_valid_percent",
    "is_valid_port_name",
    "is_valid_port_num",
    "max_len_error",
    "name_is_dns1035_label",
    "name_is_dns1123_label",
    "name_is_dns1123_subdomain",
    "name_is_path_segment",
    "regex_error",
]

# `k8s.io/apimachinery/pkg/util/rand`: no vowels (so no words) and no easily confused characters.
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
GENERATED_RANDOM_LENGTH = 5
_MAX_NAME_LENGTH = 63
MAX_GENERATED_NAME_LENGTH = _MAX_NAME_LENGTH - GENERATED_RANDOM_LENGTH

# Seeded from the OS once (and again in a forked child, which would otherwise repeat the
# parent's names), as upstream's math/rand source is: names need to be unlikely to collide,
# not unpredictable, and a system-RNG read per character costs a syscall each.
_random_source = _random.Random()
os.register_at_fork(after_in_child=_random_source.seed)


def generate_name(prefix: str, rand: _random.Random | None = None) -> str:
    """`SimpleNameGenerator.GenerateName`: the prefix cut to 58 characters, plus 5 random ones."""
    source = rand if rand is not None else _random_source
    base = prefix[:MAX_GENERATED_NAME_LENGTH]
    return base + "".join([source.choice(_ALPHANUMS) for _ in range(GENERATED_RANDOM_LENGTH)])


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
_QNAME_RE = re.compile(f"^{_QNAME_FMT}$")
_QNAME_MAX = 63

_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_LABEL_VALUE_MAX = 63

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_ERR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character"
)
_DNS1123_LABEL_RE = re.compile(f"^{_DNS1123_LABEL_FMT}$")
_DNS1123_LABEL_MAX = 63

_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1123_SUBDOMAIN_MAX = 253

_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_ERR = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character"
)
_DNS1035_LABEL_RE = re.compile(f"^{_DNS1035_LABEL_FMT}$")
_DNS1035_LABEL_MAX = 63

_CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_MAP_KEY_ERR = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_CONFIG_MAP_KEY_RE = re.compile(f"^{_CONFIG_MAP_KEY_FMT}$")

_PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(f"^{_PERCENT_FMT}$")


def _full(regex: re.Pattern[str], value: str) -> bool:
    # `re.fullmatch` rather than `$`, which would also accept a trailing newline.
    return regex.fullmatch(value) is not None


def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > _DNS1123_LABEL_MAX:
        errs.append(max_len_error(_DNS1123_LABEL_MAX))
    if not _full(_DNS1123_LABEL_RE, value):
        if _full(_DNS1123_SUBDOMAIN_RE, value):
            # A valid subdomain but not a label: the length was checked, so it must be the dots.
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_ERR, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > _DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(_DNS1123_SUBDOMAIN_MAX))
    if not _full(_DNS1123_SUBDOMAIN_RE, value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > _DNS1035_LABEL_MAX:
        errs.append(max_len_error(_DNS1035_LABEL_MAX))
    if not _full(_DNS1035_LABEL_RE, value):
        errs.append(regex_error(_DNS1035_LABEL_ERR, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Label keys, annotation keys and finalizer names: `[prefix/]name`."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(_QNAME_ERR, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > _QNAME_MAX:
        errs.append("name part " + max_len_error(_QNAME_MAX))
    if not _full(_QNAME_RE, name):
        errs.append("name part " + regex_error(_QNAME_ERR, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > _LABEL_VALUE_MAX:
        errs.append(max_len_error(_LABEL_VALUE_MAX))
    if not _full(_LABEL_VALUE_RE, value):
        errs.append(regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_config_map_key(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > _DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(_DNS1123_SUBDOMAIN_MAX))
    if not _full(_CONFIG_MAP_KEY_RE, value):
        errs.append(regex_error(_CONFIG_MAP_KEY_ERR, _CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


_PORT_NAME_CHARSET = re.compile("^[-a-z0-9]+$")
_PORT_NAME_ONE_LETTER = re.compile("[a-z]")


def is_valid_port_name(port: str) -> list[str]:
    errs: list[str] = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _full(_PORT_NAME_CHARSET, port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_ONE_LETTER.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_ip(value: str) -> list[str]:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def is_valid_percent(value: str) -> list[str]:
    if not _full(_PERCENT_RE, value):
        return [
            regex_error(
                "a valid percent string must be a numeric string followed by an ending '%'",
                _PERCENT_FMT,
                "1%",
                "93%",
            )
        ]
    return []


def is_path_segment_prefix(name: str) -> list[str]:
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


def is_path_segment_name(name: str) -> list[str]:
    for bad in (".", ".."):
        if name == bad:
            return [f"may not be '{bad}'"]
    return is_path_segment_prefix(name)


# Per-kind name validators (`ValidateNameFunc(name, prefix)`); `prefix` is true for generateName.
NameValidator = Callable[[str, bool], list[str]]


def _mask_trailing_dash(name: str) -> str:
    # Upstream replaces the last two characters with "a" so "foo-" checks as a valid "foa".
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def name_is_dns1123_subdomain(name: str, prefix: bool) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1123_label(name: str, prefix: bool) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def name_is_path_segment(name: str, prefix: bool) -> list[str]:
    return is_path_segment_prefix(name) if prefix else is_path_segment_name(name)
