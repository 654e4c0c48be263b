"""Request authorization: may this user do this verb on this resource or path?

Authorization is its own pipeline step so that authorizers slot in without touching handlers.
`pinnace server` uses `standard_authorizer(rbac)`: `system:masters` may do anything (upstream's
privileged group, checked before any policy so a broken policy cannot lock the admin out),
anyone may read the health and version endpoints, then the Node authorizer
(`controlplane.apiserver.node_authorizer`) and RBAC (`controlplane.apiserver.rbac`) decide, as
upstream's `--authorization-mode=Node,RBAC`.

Denials carry upstream's message, e.g. `pods is forbidden: User "x" cannot list resource "pods"
in API group "" in the namespace "default"`, built from the same attributes the authorizer saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from controlplane.api import errors
from controlplane.apiserver.authn import ANONYMOUS_PATHS, UserInfo

__all__ = [
    "SYSTEM_MASTERS",
    "Attributes",
    "Authorizer",
    "Decision",
    "PublicInfoAuthorizer",
    "SystemMastersAuthorizer",
    "UnionAuthorizer",
    "authorize",
    "forbidden_error",
    "forbidden_message",
    "standard_authorizer",
]

SYSTEM_MASTERS = "system:masters"


@dataclass(frozen=True)
class Attributes:
    """What is being asked, in upstream's authorizer.Attributes terms.

    `verb` is the API verb (get, list, watch, create, update, patch, delete, deletecollection)
    for resource requests and the lower-cased HTTP method for non-resource ones (`path`).
    """

    user: UserInfo
    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = False
    api_version: str = ""
    # The request's fieldSelector, as upstream's authorizer.Attributes carries it: the Node
    # authorizer lets a node list and watch pods only with `spec.nodeName=<itself>`.
    field_selector: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


class Authorizer(Protocol):
    async def authorize(self, attrs: Attributes) -> Decision: ...


class SystemMastersAuthorizer:
    """The privileged group: members of `system:masters` are allowed everything, always."""

    async def authorize(self, attrs: Attributes) -> Decision:
        return Decision(allowed=SYSTEM_MASTERS in attrs.user.groups)


class PublicInfoAuthorizer:
    """Reading health and version is open to everyone, authenticated or not (upstream's
    `system:public-info-viewer` role, bound to system:authenticated and system:unauthenticated)."""

    async def authorize(self, attrs: Attributes) -> Decision:
        return Decision(
            allowed=not attrs.resource_request and attrs.verb == "get" and attrs.path in ANONYMOUS_PATHS
        )


class UnionAuthorizer:
    """Ask each in order; the first that allows wins. The reasons of those that did not are kept
    (joined by newlines, as upstream) for the Forbidden message."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self._authorizers = tuple(authorizers)

    async def authorize(self, attrs: Attributes) -> Decision:
        reasons: list[str] = []
        for authorizer in self._authorizers:
            decision = await authorizer.authorize(attrs)
            if decision.allowed:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return Decision(allowed=False, reason="\n".join(reasons))


def standard_authorizer(rbac: Authorizer, node: Authorizer | None = None) -> UnionAuthorizer:
    """The server's chain, in upstream's order: the privileged group, public info, then the Node
    authorizer and RBAC (`--authorization-mode=Node,RBAC`)."""
    chain: list[Authorizer] = [SystemMastersAuthorizer(), PublicInfoAuthorizer()]
    if node is not None:
        chain.append(node)
    chain.append(rbac)
    return UnionAuthorizer(chain)


def _denial(attrs: Attributes) -> str:
    """The `User "x" cannot ...` part, as upstream's responsewriters.forbiddenMessage."""
    user = attrs.user.name
    if not attrs.resource_request:
        return f"User {_quote(user)} cannot {attrs.verb} path {_quote(attrs.path)}"
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    head = (
        f"User {_quote(user)} cannot {attrs.verb} resource {_quote(resource)} "
        f"in API group {_quote(attrs.api_group)}"
    )
    if attrs.namespace:
        return f"{head} in the namespace {_quote(attrs.namespace)}"
    return f"{head} at the cluster scope"


def _quote(value: str) -> str:
    """Go's %q for the printable strings names are made of."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """The full Forbidden message, as apierrors.NewForbidden frames the denial."""
    detail = f"{_denial(attrs)}: {reason}" if reason else _denial(attrs)
    if not attrs.resource_request or not attrs.resource:
        return f"forbidden: {detail}"
    qualified = errors.qualified_resource(attrs.resource, attrs.api_group)
    if attrs.name:
        return f"{qualified} {_quote(attrs.name)} is forbidden: {detail}"
    return f"{qualified} is forbidden: {detail}"


def forbidden_error(attrs: Attributes, reason: str = "") -> errors.Forbidden:
    """The 403 upstream sends: details carry the group, the resource (as `kind`) and the name."""
    if not attrs.resource_request:
        return errors.Forbidden(message=forbidden_message(attrs, reason))
    return errors.Forbidden(
        message=forbidden_message(attrs, reason),
        name=attrs.name,
        group=attrs.api_group,
        kind=attrs.resource,
    )


async def authorize(authorizer: Authorizer, attrs: Attributes) -> None:
    """The authorization step of the pipeline: return if allowed, raise Forbidden otherwise."""
    decision = await authorizer.authorize(attrs)
    if not decision.allowed:
        raise forbidden_error(attrs, decision.reason)
