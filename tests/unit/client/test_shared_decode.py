"""SharedDecoder: equal lines seen recently give the very same object; nothing else changes."""

from __future__ import annotations

import orjson
import pytest

from controlplane.client.shared_decode import SharedDecoder


def line(name: str, rv: int) -> bytes:
    return orjson.dumps(
        {"type": "MODIFIED", "object": {"metadata": {"name": name, "resourceVersion": str(rv)}}}
    )


def test_equal_lines_share_one_object() -> None:
    decoder = SharedDecoder()
    first = decoder.decode(line("a", 1))
    again = decoder.decode(bytes(bytearray(line("a", 1))))  # an equal line, not the same bytes object
    assert again is first
    assert first == orjson.loads(line("a", 1))


def test_different_lines_do_not_share() -> None:
    decoder = SharedDecoder()
    assert decoder.decode(line("a", 1)) is not decoder.decode(line("a", 2))
    assert decoder.decode(line("a", 2))["object"]["metadata"]["resourceVersion"] == "2"


def test_bounded_oldest_forgotten_first() -> None:
    decoder = SharedDecoder(size=2)
    one = decoder.decode(line("a", 1))
    two = decoder.decode(line("a", 2))
    decoder.decode(line("a", 3))
    assert decoder.decode(line("a", 2)) is two
    assert decoder.decode(line("a", 1)) is not one  # forgotten: decoded afresh, still equal
    assert decoder.decode(line("a", 1)) == one


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SharedDecoder(size=0)


def test_malformed_line_raises_like_orjson() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        SharedDecoder().decode(b"{not json")
