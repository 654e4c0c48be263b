"""RE2 patterns, as Go's `regexp` compiles them (lookarounds and backreferences are errors).

`google-re2` (a dependency of cel-python) gives the same engine as Go's; its error texts are
mapped to Go's `regexp/syntax` wording so `pattern` failures read as upstream's.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol, cast

import re2  # type: ignore[import-untyped]

__all__ = ["Pattern", "RegexError", "compile_pattern"]


class Pattern(Protocol):
    def search(self, text: str, pos: int = ..., endpos: int = ...) -> Any: ...


class RegexError(ValueError):
    """A pattern Go would refuse; `str()` is Go's `*syntax.Error` text."""


# RE2 C++ message prefix -> Go regexp/syntax ErrorCode text.
_GO_CODES = (
    ("missing )", "missing closing )"),
    ("missing ]", "missing closing ]"),
    ("bad repetition operator", "invalid nested repetition operator"),
    ("no argument for repetition operator", "missing argument to repetition operator"),
    ("invalid escape sequence", "invalid escape sequence"),
    ("unexpected )", "unexpected )"),
    ("invalid perl operator", "invalid or unsupported Perl syntax"),
    ("invalid character class range", "invalid character class range"),
    ("invalid character class", "invalid character class"),
    ("bad repetition count", "invalid repeat count"),
    ("invalid repetition size", "invalid repeat count"),
    ("trailing \\", "trailing backslash at end of expression"),
    ("invalid named capture group", "invalid named capture"),
    ("invalid UTF-8", "invalid UTF-8"),
)


def _options() -> Any:
    opts = re2.Options()
    opts.log_errors = False
    return opts


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Pattern:
    try:
        return cast(Pattern, re2.compile(pattern, _options()))
    except re2.error as exc:
        raw = exc.args[0] if exc.args else b""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        head, _, arg = text.partition(": ")
        code = next((go for prefix, go in _GO_CODES if head.startswith(prefix)), head)
        raise RegexError(f"error parsing regexp: {code}: `{arg or pattern}`") from None
