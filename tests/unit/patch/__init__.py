"""Unit tests of the patch semantics (JSON patch, merge patch, strategic merge patch)."""
