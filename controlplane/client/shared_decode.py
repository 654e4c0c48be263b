"""Watch lines decoded once per process, for watchers that only read what they receive.

`pinnace server` runs the controller manager and the scheduler in one process, each a client
of the API server with its own informers; both watch every pod and node and get the same
bytes for each event. Decoded separately, every pod was held twice (~10 KiB as Python objects
each: 300 MiB at 30,000 pods) and decoded twice. Lines seen recently map to the object decoded
the first time, so the second watcher gets that same object: it must treat it as read-only,
as informer caches are (the one change informers make, dropping managedFields, is idempotent).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

__all__ = ["SharedDecoder", "shared_decoder"]

# Events stay here for the time the slower watcher of a pair lags the faster: at ~200 events/s
# in the server under load, ~10 s.
DEFAULT_SIZE = 2048


class SharedDecoder:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self._size = size
        self._recent: OrderedDict[bytes, Any] = OrderedDict()

    def decode(self, line: bytes) -> Any:
        """orjson.loads(line), or the object an equal line decoded to recently."""
        found = self._recent.get(line)
        if found is None:
            found = orjson.loads(line)
            self._recent[line] = found
            if len(self._recent) > self._size:
                self._recent.popitem(last=False)
        return found


_PROCESS = SharedDecoder()


def shared_decoder() -> SharedDecoder:
    """The process's decoder, shared by every Client that asks for shared decoding."""
    return _PROCESS
