"""Name generation and the upstream string validators."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api import names


def test_generate_name_appends_five_safe_characters() -> None:
    name = names.generate_name("web-", random.Random(1))
    assert name.startswith("web-")
    assert len(name) == len("web-") + 5
    assert set(name[4:]) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert names.generate_name("web-", random.Random(1)) == name


@settings(deadline=None, max_examples=50)
@given(st.text(alphabet="abc-", max_size=80))
def test_generated_names_are_at_most_63(prefix: str) -> None:
    name = names.generate_name(prefix)
    assert len(name) == min(len(prefix), 58) + 5
    assert name.startswith(prefix[:58])


def test_dns1123_subdomain() -> None:
    assert names.is_dns1123_subdomain("a.b-c") == []
    assert names.is_dns1123_subdomain("Bad_Name") == [
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
        "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
        "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    ]
    assert names.is_dns1123_subdomain("a" * 254)[0] == "must be no more than 253 characters"


def test_dns1123_label() -> None:
    assert names.is_dns1123_label("abc-1") == []
    assert names.is_dns1123_label("a.b") == ["must not contain dots"]
    assert names.is_dns1123_label("-a")[0].startswith("a lowercase RFC 1123 label must consist")
    assert "(e.g. 'my-name',  or '123-abc', " in names.is_dns1123_label("-a")[0]


def test_dns1035_label() -> None:
    assert names.is_dns1035_label("svc-1") == []
    assert names.is_dns1035_label("1svc")[0].startswith("a DNS-1035 label must consist")


def test_qualified_name_and_label_value() -> None:
    assert names.is_qualified_name("example.com/My_Name") == []
    assert names.is_qualified_name("/x") == ["prefix part must be non-empty"]
    assert names.is_qualified_name("a/b/c")[0].startswith("a qualified name must consist")
    assert names.is_qualified_name("x" * 64) == ["name part must be no more than 63 characters"]
    assert names.is_valid_label_value("") == []
    assert names.is_valid_label_value("-x")[0].startswith("a valid label must be an empty string")


def test_generate_name_prefix_masking() -> None:
    assert names.name_is_dns1123_subdomain("web-", True) == []
    assert names.name_is_dns1123_subdomain("web-", False) != []
    assert names.name_is_path_segment("a:b", False) == []
    assert names.name_is_path_segment("a/b", False) == ["may not contain '/'"]
    assert names.name_is_path_segment("..", False) == ["may not be '..'"]
