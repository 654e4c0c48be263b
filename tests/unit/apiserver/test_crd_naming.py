"""Accepted names and the NamesAccepted/Established conditions (upstream's naming controller)."""

from __future__ import annotations

from typing import Any

from controlplane.apiserver.crd import naming


def crd(plural: str, kind: str, *, short: list[str] | None = None, accepted: bool = False) -> dict[str, Any]:
    names: dict[str, Any] = {
        "plural": plural,
        "singular": kind.lower(),
        "kind": kind,
        "listKind": f"{kind}List",
    }
    if short:
        names["shortNames"] = short
    obj: dict[str, Any] = {
        "metadata": {"name": f"{plural}.example.com"},
        "spec": {"group": "example.com", "names": names},
        "status": {"acceptedNames": {"kind": "", "plural": ""}},
    }
    if accepted:
        obj["status"]["acceptedNames"] = dict(names)
    return obj


def test_fresh_names_are_accepted_and_established() -> None:
    result = naming.calculate(crd("foos", "Foo", short=["fo"]), [])
    assert result.accepted == {
        "kind": "Foo",
        "listKind": "FooList",
        "plural": "foos",
        "shortNames": ["fo"],
        "singular": "foo",
    }
    assert result.names_accepted == {
        "type": "NamesAccepted",
        "status": "True",
        "reason": "NoConflicts",
        "message": "no conflicts found",
    }
    assert result.established == {
        "type": "Established",
        "status": "True",
        "reason": "InitialNamesAccepted",
        "message": "the initial names have been accepted",
    }


def test_a_short_name_taken_in_the_group_is_a_conflict() -> None:
    other = crd("bars", "Bar", short=["fo"], accepted=True)
    result = naming.calculate(crd("foos", "Foo", short=["fo"]), [other])
    assert result.names_accepted["status"] == "False"
    assert result.names_accepted["reason"] == "ShortNamesConflict"
    assert result.names_accepted["message"] == '"fo" is already in use'
    assert "shortNames" not in result.accepted
    assert result.established["status"] == "False"
    assert result.established["reason"] == "NotAccepted"


def test_singular_and_kind_conflicts_use_upstream_reasons() -> None:
    other = crd("foo", "Foo", accepted=True)  # its plural is our singular, its kind ours
    result = naming.calculate(crd("foos", "Foo"), [other])
    # The last conflict checked (kind) names the condition, as upstream overwrites it.
    assert result.names_accepted["reason"] == "ListKindConflict"
    assert result.names_accepted["message"] == '"FooList" is already in use'
    assert result.accepted["plural"] == "foos"
    assert "singular" not in result.accepted


def test_other_groups_do_not_conflict() -> None:
    other = crd("bars", "Bar", short=["fo"], accepted=True)
    other["spec"]["group"] = "other.example.com"
    assert naming.calculate(crd("foos", "Foo", short=["fo"]), [other]).names_accepted["status"] == "True"


def test_established_stays_true_once_true() -> None:
    established = crd("foos", "Foo", short=["fo"], accepted=True)
    established["status"]["conditions"] = [
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "m"}
    ]
    established["spec"]["names"]["shortNames"] = ["fo", "ba"]
    other = crd("bars", "Bar", short=["ba"], accepted=True)
    result = naming.calculate(established, [other])
    assert result.names_accepted["reason"] == "ShortNamesConflict"
    assert result.accepted["shortNames"] == ["fo"]  # the old accepted names keep serving
    assert result.established["status"] == "True"
