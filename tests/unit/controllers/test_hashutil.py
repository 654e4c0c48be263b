"""The hash primitives behind upstream's object names, against Go's reference vectors."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controlplane.controllers.hashutil import FNV32_OFFSET, fnv32, fnv32a, safe_encode_string


def test_fnv_matches_go_vectors() -> None:
    # hash/fnv's golden32 and golden32a tables.
    assert fnv32(b"") == 0x811C9DC5
    assert fnv32(b"a") == 0x050C5D7E
    assert fnv32(b"abc") == 0x439C2F4B
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"abc") == 0x1A47E90B
    assert fnv32a(b"foobar") == 0xBF9CF968


@given(st.binary(), st.binary())
def test_fnv32a_seed_continues_a_hash(first: bytes, second: bytes) -> None:
    assert fnv32a(second, fnv32a(first)) == fnv32a(first + second)
    assert fnv32a(first, FNV32_OFFSET) == fnv32a(first)


def test_safe_encode_string_uses_the_upstream_alphabet() -> None:
    assert safe_encode_string("123") == "567"
    assert safe_encode_string("0123456789") == "456789bcdf"
    assert safe_encode_string("") == ""
