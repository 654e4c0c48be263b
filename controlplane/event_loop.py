"""Which asyncio event loop the long-running commands run on.

uvloop (libuv, the loop under Node.js) by default: the server is one event loop doing TLS,
HTTP and watch fan-out for every client, and the stdlib loop's own Python code (the ready
queue, selector callbacks, transports) is a visible share of it under load. The stdlib loop
stays one environment variable away, for debugging or a platform uvloop does not build on:
PINNACE_EVENT_LOOP=asyncio.
"""

from __future__ import annotations

import asyncio
import os

__all__ = ["ENV", "install"]

ENV = "PINNACE_EVENT_LOOP"
_CHOICES = ("uvloop", "asyncio")


def install(choice: str | None = None) -> str:
    """Make later `asyncio.run` calls use the chosen loop; returns the choice made."""
    chosen = (choice if choice is not None else os.environ.get(ENV, "")) or "uvloop"
    if chosen not in _CHOICES:
        raise ValueError(f"{ENV} must be one of {', '.join(_CHOICES)}, got {chosen!r}")
    if chosen == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(None)
    return chosen
