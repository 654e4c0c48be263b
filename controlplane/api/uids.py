"""Random (version 4) UUIDs for object UIDs, audit IDs and review UIDs, from the OS's CSPRNG read
in blocks.

Every request gets an audit ID and every create a UID. `uuid.uuid4()` reads 16 bytes per call;
`os.urandom` releases the GIL, and on a busy server the event loop then waits for the storage
threads to hand it back, which showed as ~2 % of the loop's time in a density run. One read of a
block serves 256 UUIDs. The bytes are the same kernel randomness, so UIDs stay unguessable as
upstream's (`crypto/rand`).
"""

from __future__ import annotations

import os
import threading

__all__ = ["uuid4"]

_BLOCK = 4096

_lock = threading.Lock()
_pool = b""
_offset = 0


def uuid4() -> str:
    """A random UUID in its canonical string form."""
    global _pool, _offset
    with _lock:
        if _offset + 16 > len(_pool):
            _pool = os.urandom(_BLOCK)
            _offset = 0
        raw = bytearray(_pool[_offset : _offset + 16])
        _offset += 16
    # What uuid.UUID(bytes=raw, version=4) sets, without building the object: version 4 in the
    # high nibble of byte 6, the RFC 4122 variant (0b10) in the top bits of byte 8.
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _forget_pool() -> None:
    """A forked child must not hand out the parent's unused UUIDs."""
    global _lock, _pool, _offset
    _lock = threading.Lock()
    _pool = b""
    _offset = 0


os.register_at_fork(after_in_child=_forget_pool)
