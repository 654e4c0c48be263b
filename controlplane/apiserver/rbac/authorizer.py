"""The RBAC authorizer: upstream's RBACAuthorizer over the in-memory policy cache."""

from __future__ import annotations

import logging

from controlplane.api.rbac.resolver import RuleResolver, Visit, decide
from controlplane.api.rbac.rules import PolicyRule, Request
from controlplane.apiserver.authn import UserInfo
from controlplane.apiserver.authz import Attributes, Decision
from controlplane.apiserver.rbac.cache import PolicyCache

__all__ = ["RBACAuthorizer", "request_of"]

log = logging.getLogger("pinnace.rbac")


def request_of(attrs: Attributes) -> Request:
    return Request(
        verb=attrs.verb,
        resource_request=attrs.resource_request,
        api_group=attrs.api_group,
        resource=attrs.resource,
        subresource=attrs.subresource,
        name=attrs.name,
        namespace=attrs.namespace,
        path=attrs.path,
    )


# Users (name, groups) x namespaces whose resolved rules are kept between policy changes.
_MEMO_LIMIT = 4096


class RBACAuthorizer:
    def __init__(self, cache: PolicyCache) -> None:
        self.cache = cache
        self.resolver = RuleResolver(cache)
        # The rules that apply to a user in a namespace, resolved once per policy revision: a
        # busy client (a controller, a node) asks again and again with the same identity.
        self._memo: dict[tuple[str, tuple[str, ...], str], list[Visit]] = {}
        self._memo_revision = -1

    def _visits(self, user: UserInfo, namespace: str) -> list[Visit]:
        if self._memo_revision != self.cache.revision or len(self._memo) > _MEMO_LIMIT:
            self._memo.clear()
            self._memo_revision = self.cache.revision
        key = (user.name, tuple(user.groups), namespace)
        visits = self._memo.get(key)
        if visits is None:
            visits = self._memo[key] = list(self.resolver.visit_rules_for(user, namespace))
        return visits

    async def authorize(self, attrs: Attributes) -> Decision:
        # A binding this server has just stored or deleted may still sit in the watch's queue:
        # apply what is there first, so grants and revocations hold from the next request on.
        self.cache.catch_up()
        request = request_of(attrs)
        decision = decide(self._visits(attrs.user, request.namespace), request)
        if not decision.allowed and log.isEnabledFor(logging.DEBUG):
            # upstream logs the same at -v=5: which user, which groups, what was asked
            log.debug(
                "RBAC: no rules authorize user %r with groups %r to %s %s",
                attrs.user.name,
                list(attrs.user.groups),
                attrs.verb,
                f"{attrs.resource}.{attrs.api_group}/{attrs.subresource}"
                if attrs.resource_request
                else attrs.path,
                # not "name": that is a LogRecord attribute, and logging raises KeyError
                extra={"namespace": attrs.namespace, "object_name": attrs.name},
            )
        return Decision(decision.allowed, decision.reason)

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[PolicyRule], list[str]]:
        """Every rule that applies to `user` in `namespace` (cluster-wide ones included), and
        the errors met resolving them (SelfSubjectRulesReview, escalation checks)."""
        self.cache.catch_up()
        return self.resolver.rules_for(user, namespace)
