"""What the bootstrap RBAC policy (roles, bindings, reconciled at every start) allows a user: one
resolver over the whole policy, for tests that check a component holds the rights it uses."""

from __future__ import annotations

import functools

from controlplane.api.rbac.bootstrap_policy import (
    cluster_role_binding_objects,
    cluster_role_objects,
    role_binding_objects,
    role_objects,
)
from controlplane.api.rbac.policy import binding_from_dict, role_from_dict
from controlplane.api.rbac.resolver import PolicySnapshot, RuleResolver
from controlplane.api.rbac.rules import Request
from controlplane.apiserver.authn import UserInfo

__all__ = ["bootstrap_policy_allows"]


@functools.cache
def _resolver() -> RuleResolver:
    return RuleResolver(
        PolicySnapshot.of(
            cluster_roles=[role_from_dict(o) for o in cluster_role_objects()],
            roles=[role_from_dict(o) for o in role_objects()],
            bindings=[binding_from_dict(o) for o in role_binding_objects()],
            cluster_bindings=[binding_from_dict(o) for o in cluster_role_binding_objects()],
        )
    )


def bootstrap_policy_allows(
    user: str, verb: str, resource: str, group: str = "", *, sub: str = "", ns: str = "", name: str = ""
) -> bool:
    """`user` authenticated (in system:authenticated), with no other group."""
    request = Request(verb=verb, api_group=group, resource=resource, subresource=sub, name=name, namespace=ns)
    return _resolver().authorize(UserInfo(user, groups=("system:authenticated",)), request).allowed
