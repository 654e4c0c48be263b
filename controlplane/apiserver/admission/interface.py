"""What an admission plugin sees and returns: the request's attributes, the two plugin shapes,
and the scope a validating plugin may hold across the storage write."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from controlplane.api import errors
from controlplane.api.resources import ResourceInfo

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = [
    "REQUEST_USER",
    "Attributes",
    "DeletePlugin",
    "MutatingPlugin",
    "Operation",
    "SubresourceView",
    "ValidatingPlugin",
    "ValidationScope",
    "forbidden",
]

log = logging.getLogger("pinnace.admission")

Operation = Literal["CREATE", "UPDATE", "DELETE"]
Obj = dict[str, Any]

# The requesting user as an AdmissionReview's userInfo shows it (username, uid, groups, extra):
# set by the API server's authentication step for the task serving the request.
REQUEST_USER: ContextVar[Mapping[str, Any] | None] = ContextVar("pinnace_request_user", default=None)


@dataclass(frozen=True)
class SubresourceView:
    """A subresource whose requests carry a kind of their own (`scale`: autoscaling/v1 Scale).
    Admission sees and mutates that object, as upstream's scale REST converts around admission;
    `from_view` writes a (possibly mutated) view back into the stored kind's object in place."""

    subresource: str
    api_version: str
    kind: str
    to_view: Callable[[Obj], Obj]
    from_view: Callable[[Obj, Obj], None]


@dataclass(frozen=True)
class Attributes:
    """upstream's admission.Attributes, for the parts the plugins here read."""

    info: ResourceInfo
    operation: Operation
    namespace: str
    # As upstream's admission error messages show it: the name, or the generateName prefix of an
    # object whose name is not generated yet.
    name: str
    subresource: str = ""
    dry_run: bool = False
    # What a plugin read in the mutating phase and reads again when validating the same request
    # (kept across `dataclasses.replace`, which passes the same dict on).
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # Warnings for the client (admission webhooks answer with some): the response's own list,
    # which the REST layer sends as `Warning` headers.
    warnings: list[str] = field(default_factory=list, compare=False, repr=False)
    # Set for a subresource with its own kind: built-in plugins skip it (its subresource is set),
    # webhooks see the view's objects.
    view: SubresourceView | None = field(default=None, compare=False, repr=False)

    def is_resource(self, group: str, plural: str) -> bool:
        return self.info.group == group and self.info.plural == plural and not self.info.custom


def forbidden(attrs: Attributes, reason: str) -> errors.Forbidden:
    """admission.NewForbidden: `pods "x" is forbidden: <reason>` as a 403."""
    resource = errors.qualified_resource(attrs.info.plural, attrs.info.group)
    message = (
        f'{resource} "{attrs.name}" is forbidden: {reason}'
        if attrs.name
        else f"{resource} is forbidden: {reason}"
    )
    return errors.Forbidden(message=message, name=attrs.name, group=attrs.info.group, kind=attrs.info.plural)


class MutatingPlugin(Protocol):
    name: str

    async def admit(self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        """Change `obj` in place, or raise a StatusError to refuse the request."""


class ValidatingPlugin(Protocol):
    name: str

    async def validate(
        self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None, scope: ValidationScope
    ) -> None:
        """Raise a StatusError to refuse the request; never change `obj`."""


class DeletePlugin(Protocol):
    name: str

    async def admit_delete(self, ctx: ServerContext, attrs: Attributes, old: Obj) -> None:
        """Raise a StatusError to refuse deleting `old` (the object as stored)."""


class ValidationScope:
    """Held from validating admission until the write has landed: plugins take locks here (so
    the check and the write are one step for other requests) and leave work for after a write
    that happened (never after a dry run, a no-op or a failed write)."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self._stack = stack
        self._after_commit: list[Callable[[], Awaitable[None]]] = []

    async def hold(self, lock: asyncio.Lock) -> None:
        await self._stack.enter_async_context(lock)

    def on_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        self._after_commit.append(action)

    async def committed(self) -> None:
        """The object is stored: run what plugins left. Their failures cannot undo the write, so
        they are logged, not raised."""
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            try:
                await action()
            except Exception:
                log.exception("admission follow-up after a committed write failed")
