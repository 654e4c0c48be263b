"""The two webhook admission plugins: MutatingAdmissionWebhook (called in order, JSON patches
applied, reinvocation) and ValidatingAdmissionWebhook (called in parallel), upstream's
generic/webhook.go and the mutating and validating dispatchers."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from controlplane.api import errors, uids
from controlplane.api.patch import json_patch
from controlplane.api.resources import ResourceInfo
from controlplane.apiserver.admission.interface import REQUEST_USER, Attributes, ValidationScope
from controlplane.apiserver.webhooks import client, match_conditions, review, rules
from controlplane.apiserver.webhooks.config import Webhook
from controlplane.apiserver.webhooks.errors import CallError, denied, dry_run_unsupported, internal
from controlplane.apiserver.webhooks.source import ConfigurationSource

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = ["MutatingWebhooks", "ValidatingWebhooks"]

log = logging.getLogger("pinnace.admission.webhook")

Obj = dict[str, Any]


@dataclass(frozen=True)
class Invocation:
    """A webhook that applies to this request, and the version it wants the object in."""

    hook: Webhook
    info: ResourceInfo

    def converts(self, attrs: Attributes) -> bool:
        # A subresource's own kind (autoscaling/v1 Scale) is the same in every version.
        return attrs.view is None and self.info.version != attrs.info.version


def _kind(attrs: Attributes, info: ResourceInfo) -> Obj:
    """The kind a webhook is told: the subresource's own (Scale) or the resource's."""
    if attrs.view is not None:
        group, _, version = attrs.view.api_version.rpartition("/")
        return {"group": group, "version": version, "kind": attrs.view.kind}
    return {"group": info.group, "version": info.version, "kind": info.kind}


def _facts(attrs: Attributes, info: ResourceInfo, obj: Obj | None) -> rules.RequestFacts:
    namespace = attrs.namespace
    if info.group == "" and info.plural == "namespaces":
        # Upstream's attributes carry a namespace's own name as its namespace.
        namespace = str(((obj or {}).get("metadata") or {}).get("name") or attrs.name)
    return rules.RequestFacts(
        operation=attrs.operation,
        group=info.group,
        version=info.version,
        resource=info.plural,
        subresource=attrs.subresource,
        namespace=namespace,
    )


def _matching_info(
    ctx: ServerContext, hook: Webhook, attrs: Attributes, obj: Obj | None
) -> ResourceInfo | None:
    if rules.rules_match(hook.rules, _facts(attrs, attrs.info, obj)):
        return attrs.info
    if hook.match_policy != "Equivalent":
        return None
    # Equivalent: the same group and resource served in another version the rules name.
    for other in ctx.registry:
        if other.group != attrs.info.group or other.plural != attrs.info.plural:
            continue
        if other.version == attrs.info.version:
            continue
        if rules.rules_match(hook.rules, _facts(attrs, other, obj)):
            return other
    return None


async def _namespace_labels(
    ctx: ServerContext, facts: rules.RequestFacts, attrs: Attributes, obj: Obj | None
) -> Mapping[str, str]:
    if (
        facts.group == ""
        and facts.resource == "namespaces"
        and attrs.subresource == ""
        and attrs.operation in ("CREATE", "UPDATE")
    ):
        # The object being written is the namespace: its labels as they will be.
        return ((obj or {}).get("metadata") or {}).get("labels") or {}
    ns_info = ctx.registry.get("", "v1", "namespaces")
    assert ns_info is not None
    namespace = await ctx.store.get_or_none(ns_info, "", facts.namespace)
    if namespace is None:
        raise errors.NotFound.for_object("namespaces", "", facts.namespace)
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, Mapping) else {}


def _user() -> Obj:
    user = REQUEST_USER.get()
    return dict(user) if user else {}


def _review_name(attrs: Attributes, obj: Obj | None) -> str:
    # A generated name does not exist yet when upstream's mutating webhooks run.
    name = str(((obj or {}).get("metadata") or {}).get("name") or "")
    return attrs.name if attrs.name == name else ""


async def _convert(ctx: ServerContext, obj: Obj | None, info: ResourceInfo) -> Obj | None:
    """The object in the version the webhook asked for (matchPolicy Equivalent)."""
    if obj is None:
        return None
    if info.custom:
        crd = await _crd_of(ctx, info)
        if crd is not None:
            from controlplane.apiserver.conversion import convert_objects

            return (await convert_objects(ctx, crd, [obj], info.api_version))[0]
    converted = copy.deepcopy(obj)
    converted["apiVersion"] = info.api_version
    return converted


async def _crd_of(ctx: ServerContext, info: ResourceInfo) -> Obj | None:
    crd_info = ctx.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    if crd_info is None:
        return None
    return await ctx.store.get_or_none(crd_info, "", f"{info.plural}.{info.group}")


class _Dispatcher:
    kind: str = ""

    def __init__(self, source: ConfigurationSource | None = None) -> None:
        self.source = source or ConfigurationSource()

    async def _invocations(
        self, ctx: ServerContext, attrs: Attributes, obj: Obj | None, old: Obj | None
    ) -> list[Invocation]:
        if rules.is_exempt(attrs.info.group, attrs.info.plural):
            return []
        hooks = await self.source.webhooks(ctx, "mutating" if self.kind == "mutating" else "validating")
        out: list[Invocation] = []
        for hook in hooks:
            invocation = await self._should_call(ctx, hook, attrs, obj, old)
            if invocation is not None:
                out.append(invocation)
        return out

    async def _should_call(
        self, ctx: ServerContext, hook: Webhook, attrs: Attributes, obj: Obj | None, old: Obj | None
    ) -> Invocation | None:
        info = _matching_info(ctx, hook, attrs, obj)
        if info is None:
            return None
        facts = _facts(attrs, info, obj)
        labels = None
        if rules.needs_namespace_labels(hook.namespace_selector, facts):
            labels = await _namespace_labels(ctx, facts, attrs, obj)
        if not rules.matches_namespace_labels(hook.namespace_selector, facts, labels):
            return None
        if not rules.matches_object(hook.object_selector, obj, old):
            return None
        if hook.match_conditions:
            variables = {
                "object": obj,
                "oldObject": old,
                "request": {
                    "operation": attrs.operation,
                    "name": attrs.name,
                    "namespace": attrs.namespace,
                    "subResource": attrs.subresource,
                    "dryRun": attrs.dry_run,
                    "userInfo": _user(),
                    "kind": _kind(attrs, info),
                    "resource": {"group": info.group, "version": info.version, "resource": info.plural},
                },
            }
            try:
                if not match_conditions.evaluate(hook.match_conditions, variables):
                    return None
            except match_conditions.MatchConditionError as exc:
                if hook.ignores_failures:
                    log.warning(
                        "failed evaluating match conditions of webhook %s, failing open: %s", hook.name, exc
                    )
                    return None
                log.warning(
                    "failed evaluating match conditions of webhook %s, failing closed: %s", hook.name, exc
                )
                resource = errors.qualified_resource(attrs.info.plural, attrs.info.group)
                raise errors.Forbidden(
                    message=f'{resource} "{attrs.name}" is forbidden: {exc}',
                    name=attrs.name,
                    group=attrs.info.group,
                    kind=attrs.info.plural,
                ) from exc
        return Invocation(hook, info)

    async def _ask(
        self, ctx: ServerContext, invocation: Invocation, attrs: Attributes, obj: Obj | None, old: Obj | None
    ) -> review.Reply:
        """One call: raises CallError (failurePolicy applies) or a StatusError (it does not)."""
        hook = invocation.hook
        if attrs.dry_run and not hook.supports_dry_run:
            raise dry_run_unsupported(hook.name)
        uid = uids.uuid4()
        body = review.admission_review(
            uid=uid,
            info=invocation.info,
            request_info=attrs.info,
            subresource=attrs.subresource,
            name=_review_name(attrs, obj if obj is not None else old),
            namespace=attrs.namespace,
            operation=attrs.operation,
            user=_user(),
            obj=obj,
            old=old,
            dry_run=attrs.dry_run,
            kind=_kind(attrs, invocation.info) if attrs.view is not None else None,
        )
        try:
            target = await client.resolve(ctx, hook.client_config, hook.timeout_seconds)
            answer = await client.post_json(target, body, hook.timeout_seconds)
        except client.WebhookCallFailed as exc:
            raise CallError(hook.name, f"failed to call webhook: {exc}") from exc
        try:
            reply = review.verify_response(answer, uid, mutating=self.kind == "mutating")
        except review.InvalidResponse as exc:
            raise CallError(hook.name, f"received invalid webhook response: {exc}") from exc
        attrs.warnings.extend(reply.warnings)
        for key, value in reply.audit_annotations.items():
            # No audit log events carry annotations yet; keep them visible in the server log.
            log.info("audit annotation from webhook %s: %s/%s=%s", hook.name, hook.name, key, value)
        if not reply.allowed:
            raise denied(hook.name, reply.result)
        return reply


def _failed_call(hook: Webhook, exc: CallError) -> errors.StatusError | None:
    """failurePolicy: Ignore logs and goes on (None), Fail is an internal error."""
    if hook.ignores_failures:
        log.warning("Failed calling webhook, failing open %s: %s", hook.name, exc)
        return None
    log.warning("Failed calling webhook, failing closed %s: %s", hook.name, exc)
    return internal(exc)


@dataclass
class _Reinvocation:
    """upstream's webhookReinvokeContext: which IfNeeded webhooks ran, and which must run again
    because the object changed after them."""

    previously_invoked: set[str] = field(default_factory=set)
    to_reinvoke: set[str] = field(default_factory=set)
    needed: bool = False

    def changed(self) -> None:
        self.to_reinvoke |= self.previously_invoked
        self.previously_invoked = set()
        self.needed = True


class MutatingWebhooks(_Dispatcher):
    """MutatingAdmissionWebhook. Runs last among the mutating plugins; when a webhook changes
    the object, the IfNeeded webhooks called before it are called once more (the built-in
    plugins are not rerun: none of Pinnace's reacts to what a webhook adds)."""

    name = "MutatingAdmissionWebhook"
    kind = "mutating"

    async def admit(self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        view = attrs.view
        if view is None:
            await self._admit(ctx, attrs, obj, old)
            return
        if not await self.source.webhooks(ctx, "mutating"):
            return  # nothing to call: no view to build, copy and compare (every pods/binding)
        # The webhooks see and patch the subresource's object (a Scale); what they change goes
        # back into the stored object.
        seen = view.to_view(obj)
        before = copy.deepcopy(seen)
        await self._admit(ctx, attrs, seen, view.to_view(old) if old is not None else None)
        if seen != before:
            view.from_view(seen, obj)

    async def _admit(self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        invocations = await self._invocations(ctx, attrs, obj, old)
        if not invocations:
            return
        state = _Reinvocation()
        await self._pass(ctx, attrs, obj, old, invocations, state, reinvoke=False)
        if state.needed:
            await self._pass(ctx, attrs, obj, old, invocations, state, reinvoke=True)

    async def admit_delete(self, ctx: ServerContext, attrs: Attributes, old: Obj) -> None:
        """DELETE: the webhooks see oldObject only; there is no object to patch."""
        for invocation in await self._invocations(ctx, attrs, None, old):
            sent_old = await _convert(ctx, old, invocation.info) if invocation.converts(attrs) else old
            try:
                await self._ask(ctx, invocation, attrs, None, sent_old)
            except CallError as exc:
                failure = _failed_call(invocation.hook, exc)
                if failure is not None:
                    raise failure from exc

    async def _pass(
        self,
        ctx: ServerContext,
        attrs: Attributes,
        obj: Obj,
        old: Obj | None,
        invocations: list[Invocation],
        state: _Reinvocation,
        *,
        reinvoke: bool,
    ) -> None:
        allowed = set(state.to_reinvoke) if reinvoke else None
        for invocation in invocations:
            hook = invocation.hook
            if allowed is not None and hook.uid not in allowed:
                continue
            try:
                changed = await self._call(ctx, invocation, attrs, obj, old)
            except CallError as exc:
                failure = _failed_call(hook, exc)
                if failure is not None:
                    raise failure from exc
                continue
            if changed:
                state.changed()
            if hook.reinvocation_policy == "IfNeeded":
                state.previously_invoked.add(hook.uid)

    async def _call(
        self, ctx: ServerContext, invocation: Invocation, attrs: Attributes, obj: Obj, old: Obj | None
    ) -> bool:
        converts = invocation.converts(attrs)
        sent = await _convert(ctx, obj, invocation.info) if converts else obj
        sent_old = await _convert(ctx, old, invocation.info) if converts else old
        assert sent is not None
        reply = await self._ask(ctx, invocation, attrs, sent, sent_old)
        if not reply.patch:
            return False
        try:
            operations = orjson.loads(reply.patch)
        except orjson.JSONDecodeError as exc:
            raise internal(Exception(str(exc))) from exc
        if isinstance(operations, list) and not operations:
            return False
        try:
            patched = json_patch.apply(sent, operations)
        except errors.StatusError as exc:
            detail = exc.causes[0].message if exc.causes else exc.message
            raise internal(Exception(f"JSON Patch: {detail}")) from exc
        if converts:
            back = await _convert(ctx, patched, attrs.info)
            assert back is not None
            patched = back
        if patched == obj:
            return False
        _replace_in_place(obj, patched)
        return True


def _replace_in_place(obj: Obj, patched: Obj) -> None:
    """The REST layer holds on to `obj` and its `metadata` dict across admission (it writes
    managedFields there afterwards): both keep their identity, only their content changes."""
    meta = obj.get("metadata")
    new_meta = patched.get("metadata")
    obj.clear()
    obj.update(patched)
    if isinstance(meta, dict) and isinstance(new_meta, dict):
        meta.clear()
        meta.update(new_meta)
        obj["metadata"] = meta


class ValidatingWebhooks(_Dispatcher):
    """ValidatingAdmissionWebhook: every matching webhook is asked at once; the first refusal
    in configuration order is the answer."""

    name = "ValidatingAdmissionWebhook"
    kind = "validating"

    async def validate(
        self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None, scope: ValidationScope
    ) -> None:
        view = attrs.view
        if view is not None:
            await self._run(ctx, attrs, view.to_view(obj), view.to_view(old) if old is not None else None)
            return
        await self._run(ctx, attrs, obj, old)

    async def admit_delete(self, ctx: ServerContext, attrs: Attributes, old: Obj) -> None:
        await self._run(ctx, attrs, None, old)

    async def _run(self, ctx: ServerContext, attrs: Attributes, obj: Obj | None, old: Obj | None) -> None:
        invocations = await self._invocations(ctx, attrs, obj, old)
        if not invocations:
            return
        outcomes = await asyncio.gather(
            *(self._call(ctx, invocation, attrs, obj, old) for invocation in invocations),
            return_exceptions=True,
        )
        first: BaseException | None = None
        for outcome in outcomes:
            if outcome is None:
                continue
            if first is None:
                first = outcome
            else:
                log.warning("further webhook rejection: %s", outcome)
        if first is not None:
            raise first

    async def _call(
        self, ctx: ServerContext, invocation: Invocation, attrs: Attributes, obj: Obj | None, old: Obj | None
    ) -> None:
        converts = invocation.converts(attrs)
        sent = await _convert(ctx, obj, invocation.info) if converts else obj
        sent_old = await _convert(ctx, old, invocation.info) if converts else old
        try:
            await self._ask(ctx, invocation, attrs, sent, sent_old)
        except CallError as exc:
            failure = _failed_call(invocation.hook, exc)
            if failure is not None:
                raise failure from exc
