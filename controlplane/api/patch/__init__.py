"""Patch semantics of the API server: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
strategic merge patch, as pure functions over decoded JSON documents (no IO)."""
