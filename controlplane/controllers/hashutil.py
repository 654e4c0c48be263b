"""The hash primitives behind upstream's object names: 32-bit FNV (Go's hash/fnv) and
rand.SafeEncodeString. Deployments (pod-template-hash), DaemonSets and StatefulSets
(ControllerRevision names) build their hashes from these."""

from __future__ import annotations

__all__ = ["FNV32_OFFSET", "fnv32", "fnv32a", "safe_encode_string"]

FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193
# k8s.io/apimachinery/pkg/util/rand: no vowels, so no words.
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def fnv32(data: bytes) -> int:
    """FNV-1, 32 bits (Go's hash/fnv New32)."""
    h = FNV32_OFFSET
    for byte in data:
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
        h ^= byte
    return h


def fnv32a(data: bytes, seed: int = FNV32_OFFSET) -> int:
    """FNV-1a, 32 bits (Go's hash/fnv New32a); `seed` continues an earlier hash, as writing
    more bytes into the same Go hasher does."""
    h = seed
    for byte in data:
        h ^= byte
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode_string(text: str) -> str:
    """rand.SafeEncodeString: each rune mapped into an alphabet without vowels or look-alikes."""
    return "".join(_ALPHANUMS[ord(ch) % len(_ALPHANUMS)] for ch in text)
