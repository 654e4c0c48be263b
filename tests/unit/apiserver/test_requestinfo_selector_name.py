"""RequestInfo.Name from a `metadata.name` field selector, as upstream's RequestInfoFactory sets it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controlplane.apiserver.requestinfo import name_from_field_selector


def test_pinned_by_name() -> None:
    assert name_from_field_selector("metadata.name=node-1") == "node-1"
    assert name_from_field_selector("metadata.name==node-1") == "node-1"
    assert name_from_field_selector("spec.nodeName=a,metadata.name=b") == "b"


def test_not_pinned() -> None:
    assert name_from_field_selector("") == ""
    assert name_from_field_selector("metadata.name!=node-1") == ""
    assert name_from_field_selector("metadata.namespace=default") == ""
    assert name_from_field_selector("spec.nodeName=node-1") == ""


def test_names_that_are_not_path_segments_pin_nothing() -> None:
    for bad in ("", ".", "..", "a/b", "a%2Fb"):
        assert name_from_field_selector(f"metadata.name={bad}") == ""


@given(st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,30}[a-z0-9])?", fullmatch=True))
def test_any_object_name_round_trips(name: str) -> None:
    assert name_from_field_selector(f"metadata.name={name}") == name
    assert name_from_field_selector(f"status.phase=Running,metadata.name={name}") == name
