"""Escalation prevention on writes of Roles, ClusterRoles and their bindings: a validating
admission plugin doing what upstream's policy-based RBAC storage does before it stores.

- Roles and ClusterRoles: allowed for system:masters, for users allowed `escalate` on the
  resource, and otherwise only if the user already holds every rule in the object (in the
  request's namespace). Setting (or having) an aggregationRule needs full authority.
- RoleBindings and ClusterRoleBindings: allowed for system:masters, for users allowed `bind` on
  the referenced role, and otherwise only if the user holds every rule of the referenced role.
- An update that changes only what the garbage collector changes (ownerReferences, finalizers)
  is always allowed, so deleting an owner never gets stuck on a binding.
Requests the server makes itself (no user: start-up reconciliation) are not checked.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from controlplane.api import errors
from controlplane.api.rbac.escalation import FULL_AUTHORITY, covers, escalation_message
from controlplane.api.rbac.policy import RoleRef, binding_from_dict
from controlplane.api.rbac.rules import PolicyRule, go_quote, rules_from_list
from controlplane.apiserver.admission import REQUEST_USER, Attributes, ValidationScope, forbidden
from controlplane.apiserver.authn import UserInfo
from controlplane.apiserver.authz import SYSTEM_MASTERS, Authorizer
from controlplane.apiserver.authz import Attributes as AuthzAttributes
from controlplane.apiserver.rbac.authorizer import RBACAuthorizer

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = ["RBACEscalation"]

GROUP = "rbac.authorization.k8s.io"
_ROLES = ("roles", "clusterroles")
_BINDINGS = ("rolebindings", "clusterrolebindings")


def _user(value: Mapping[str, Any] | None) -> UserInfo | None:
    if value is None:
        return None
    extra = value.get("extra") or {}
    return UserInfo(
        name=str(value.get("username", "")),
        uid=str(value.get("uid", "")),
        groups=tuple(value.get("groups") or ()),
        extra={str(k): tuple(v) for k, v in extra.items()},
    )


def _only_gc_fields(obj: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """upstream's IsOnlyMutatingGCFields, for what this pipeline changes on every write."""
    if old is None:
        return False
    a, b = copy.deepcopy(obj), copy.deepcopy(old)
    for o in (a, b):
        meta = o.setdefault("metadata", {})
        for key in (
            "ownerReferences",
            "finalizers",
            "selfLink",
            "managedFields",
            "resourceVersion",
            "generation",
        ):
            meta.pop(key, None)
    return a == b


def _has_aggregation(obj: Mapping[str, Any] | None) -> bool:
    if obj is None:
        return False
    rule = obj.get("aggregationRule")
    return isinstance(rule, Mapping) and bool(rule.get("clusterRoleSelectors"))


class RBACEscalation:
    name = "RBACEscalation"

    def __init__(self, rbac: RBACAuthorizer, authorizer: Authorizer) -> None:
        self._rbac = rbac
        self._authorizer = authorizer

    async def validate(
        self,
        ctx: ServerContext,
        attrs: Attributes,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        scope: ValidationScope,
    ) -> None:
        info = attrs.info
        if info.custom or info.group != GROUP or attrs.subresource:
            return
        if info.plural not in _ROLES and info.plural not in _BINDINGS:
            return
        user = _user(REQUEST_USER.get())
        if user is None or SYSTEM_MASTERS in user.groups:
            return
        if attrs.operation == "UPDATE" and _only_gc_fields(obj, old):
            return
        if info.plural in _ROLES:
            await self._check_role(attrs, user, obj, old)
        else:
            await self._check_binding(attrs, user, obj)

    async def _allowed(self, user: UserInfo, verb: str, resource: str, name: str, namespace: str) -> bool:
        decision = await self._authorizer.authorize(
            AuthzAttributes(
                user=user,
                verb=verb,
                api_group=GROUP,
                resource=resource,
                namespace=namespace,
                name=name,
                resource_request=True,
                api_version="*",
            )
        )
        return decision.allowed

    def _confirm(self, attrs: Attributes, user: UserInfo, rules: tuple[PolicyRule, ...]) -> None:
        owned, resolution_errors = self._rbac.rules_for(user, attrs.namespace)
        ok, missing = covers(owned, rules)
        if not ok:
            raise forbidden(attrs, escalation_message(user, missing, resolution_errors))

    async def _check_role(
        self, attrs: Attributes, user: UserInfo, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        # RoleEscalationAuthorized: the request's own name (none on a create, as upstream).
        name = attrs.name if attrs.operation == "UPDATE" else ""
        if await self._allowed(user, "escalate", attrs.info.plural, name, attrs.namespace):
            return
        self._confirm(attrs, user, rules_from_list(obj.get("rules")))
        if attrs.info.plural == "clusterroles" and (_has_aggregation(obj) or _has_aggregation(old)):
            owned, _ = self._rbac.rules_for(user, attrs.namespace)
            if not covers(owned, FULL_AUTHORITY)[0]:
                raise forbidden(attrs, "must have cluster-admin privileges to use the aggregationRule")

    async def _check_binding(self, attrs: Attributes, user: UserInfo, obj: dict[str, Any]) -> None:
        ref: RoleRef = binding_from_dict(obj).role_ref
        if ref.kind not in ("Role", "ClusterRole"):
            return  # validation refuses it
        resource = "roles" if ref.kind == "Role" else "clusterroles"
        if await self._allowed(user, "bind", resource, ref.name, attrs.namespace):
            return
        try:
            rules = self._rbac.resolver.role_reference_rules(ref, attrs.namespace)
        except LookupError:
            # The lister's NotFound, as upstream returns it (singular resource name).
            singular = "role" if ref.kind == "Role" else "clusterrole"
            raise errors.NotFound(
                message=f"{singular}.{GROUP} {go_quote(ref.name)} not found",
                name=ref.name,
                group=GROUP,
                kind=singular,
            ) from None
        self._confirm(attrs, user, rules)
