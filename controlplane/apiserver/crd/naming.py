"""Which names a CRD gets, and its NamesAccepted / Established conditions.

Upstream's naming controller (`pkg/controller/status/naming_controller.go`) and establishing
controller, as one pure function: names already accepted by other CRDs of the same group cannot
be taken again; a conflict leaves the old accepted name in place and NamesAccepted False.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["NamingResult", "calculate"]

Obj = dict[str, Any]


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


class NamingResult:
    def __init__(self, accepted: Obj, names_accepted: Obj, established: Obj) -> None:
        self.accepted = accepted
        self.names_accepted = names_accepted
        self.established = established


def _used_names(crd: Obj, others: Iterable[Obj]) -> tuple[set[str], set[str]]:
    """(resource names, kinds) accepted by the other CRDs of the group (`getAcceptedNamesForGroup`)."""
    group = _d(crd.get("spec")).get("group")
    me = _d(crd.get("metadata")).get("name")
    resources: set[str] = set()
    kinds: set[str] = set()
    for other in others:
        if _d(other.get("spec")).get("group") != group or _d(other.get("metadata")).get("name") == me:
            continue
        accepted = _d(_d(other.get("status")).get("acceptedNames"))
        resources.update(str(accepted.get(k) or "") for k in ("plural", "singular"))
        resources.update(str(s) for s in accepted.get("shortNames") or [])
        kinds.update(str(accepted.get(k) or "") for k in ("kind", "listKind"))
    resources.discard("")
    kinds.discard("")
    return resources, kinds


def _conflict(requested: str, accepted: str, used: set[str]) -> str | None:
    """`equalToAcceptedOrFresh`."""
    if requested == accepted or requested not in used:
        return None
    return f'"{requested}" is already in use'


def calculate(crd: Obj, others: Iterable[Obj]) -> NamingResult:
    """`calculateNamesAndConditions` plus the establishing controller's step: Established turns
    True (reason InitialNamesAccepted) once the names are accepted, and stays True after."""
    resources, kinds = _used_names(crd, others)
    requested = _d(_d(crd.get("spec")).get("names"))
    accepted = _d(_d(crd.get("status")).get("acceptedNames"))
    new: Obj = dict(accepted)
    status, reason, message = "Unknown", "", ""

    def fail(why: str, text: str) -> None:
        nonlocal status, reason, message
        status, reason, message = "False", why, text

    for key, used, why in (
        ("plural", resources, "PluralConflict"),
        ("singular", resources, "SingularConflict"),
    ):
        problem = _conflict(str(requested.get(key) or ""), str(accepted.get(key) or ""), used)
        if problem:
            fail(why, problem)
        elif requested.get(key) is not None:
            new[key] = requested[key]
    wanted_short = list(requested.get("shortNames") or [])
    had_short = list(accepted.get("shortNames") or [])
    if wanted_short != had_short:
        problems = [
            p
            for s in wanted_short
            if s not in had_short and (p := _conflict(str(s), "", resources)) is not None
        ]
        if problems:
            fail("ShortNamesConflict", problems[0] if len(problems) == 1 else f"[{', '.join(problems)}]")
        elif wanted_short:
            new["shortNames"] = wanted_short
        else:
            new.pop("shortNames", None)
    for key, why in (("kind", "KindConflict"), ("listKind", "ListKindConflict")):
        problem = _conflict(str(requested.get(key) or ""), str(accepted.get(key) or ""), kinds)
        if problem:
            fail(why, problem)
        elif requested.get(key) is not None:
            new[key] = requested[key]
    if requested.get("categories"):
        new["categories"] = list(requested["categories"])
    else:
        new.pop("categories", None)
    if status == "Unknown":
        status, reason, message = "True", "NoConflicts", "no conflicts found"
    names_accepted = {"type": "NamesAccepted", "status": status, "reason": reason, "message": message}

    established: Obj = {
        "type": "Established",
        "status": "False",
        "reason": "NotAccepted",
        "message": "not all names are accepted",
    }
    for cond in _d(crd.get("status")).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Established":
            established = {k: cond[k] for k in ("type", "status", "reason", "message") if k in cond}
    if established.get("status") != "True" and status == "True":
        established = {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
        }
    return NamingResult(_ordered_names(new), names_accepted, established)


def _ordered_names(names: Obj) -> Obj:
    keys = ("categories", "kind", "listKind", "plural", "shortNames", "singular")
    out = {k: names[k] for k in keys if k in names}
    out.setdefault("kind", "")
    out.setdefault("plural", "")
    return dict(sorted(out.items()))
