"""Printers for `rbac.authorization.k8s.io` role bindings and cluster role bindings.

Roles and cluster roles have no printer upstream and get the default table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.api.printers.common import AGE, NAME, Column, Doc, Printer, age, as_str, dig, maps, name

__all__ = ["PRINTERS", "subjects_strings"]


def subjects_strings(subjects: Any) -> tuple[list[str], list[str], list[str], list[str]]:
    """`rbac.SubjectsStrings`: users, groups, `namespace/name` service accounts, and the rest."""
    users: list[str] = []
    groups: list[str] = []
    service_accounts: list[str] = []
    others: list[str] = []
    for subject in maps(subjects):
        kind, subject_name = as_str(subject.get("kind")), as_str(subject.get("name"))
        namespace = as_str(subject.get("namespace"))
        if kind == "ServiceAccount":
            service_accounts.append(f"{namespace}/{subject_name}")
        elif kind == "User":
            users.append(subject_name)
        elif kind == "Group":
            groups.append(subject_name)
        else:
            others.append(f"{kind}/{namespace}/{subject_name}")
    return users, groups, service_accounts, others


def _binding_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    role_ref = f"{as_str(dig(obj, 'roleRef', 'kind'))}/{as_str(dig(obj, 'roleRef', 'name'))}"
    users, groups, service_accounts, _ = subjects_strings(obj.get("subjects"))
    return [
        name(obj),
        role_ref,
        age(obj, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(service_accounts),
    ]


def _binding(kind: str, noun: str) -> Printer:
    return Printer(
        (
            NAME,
            Column("Role", description=Doc(f"rbac.v1.{kind}", "roleRef")),
            AGE,
            Column("Users", description=f"Users in the {noun}", priority=1),
            Column("Groups", description=f"Groups in the {noun}", priority=1),
            Column("ServiceAccounts", description=f"ServiceAccounts in the {noun}", priority=1),
        ),
        _binding_row,
    )


PRINTERS: dict[tuple[str, str], Printer] = {
    ("rbac.authorization.k8s.io", "rolebindings"): _binding("RoleBinding", "roleBinding"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): _binding(
        "ClusterRoleBinding", "clusterRoleBinding"
    ),
}
