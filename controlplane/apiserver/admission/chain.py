"""The admission chain: mutating plugins in order, then validating plugins in order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controlplane.apiserver.admission.interface import (
    Attributes,
    DeletePlugin,
    MutatingPlugin,
    ValidatingPlugin,
    ValidationScope,
)

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = ["Admission"]

Obj = dict[str, Any]


@dataclass
class Admission:
    mutating: Sequence[MutatingPlugin] = field(default_factory=list)
    validating: Sequence[ValidatingPlugin] = field(default_factory=list)
    # DELETE requests: only the admission webhooks look at them (no built-in plugin does).
    deleting: Sequence[DeletePlugin] = field(default_factory=list)

    async def admit(self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None) -> None:
        for plugin in self.mutating:
            await plugin.admit(ctx, attrs, obj, old)

    async def admit_delete(self, ctx: ServerContext, attrs: Attributes, old: Obj) -> None:
        for plugin in self.deleting:
            await plugin.admit_delete(ctx, attrs, old)

    @asynccontextmanager
    async def validate(
        self, ctx: ServerContext, attrs: Attributes, obj: Obj, old: Obj | None
    ) -> AsyncIterator[ValidationScope]:
        """Run the validating plugins; the body is the storage write, done while whatever the
        plugins hold (a namespace's quota lock) is still held. Call `scope.committed()` once
        the write has landed."""
        async with AsyncExitStack() as stack:
            scope = ValidationScope(stack)
            for plugin in self.validating:
                await plugin.validate(ctx, attrs, obj, old, scope)
            yield scope
