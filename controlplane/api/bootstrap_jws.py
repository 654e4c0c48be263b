"""Detached JWS signatures of the `cluster-info` kubeconfig (k8s.io/cluster-bootstrap/token/jws).

A joining node holding bootstrap token `<id>.<secret>` trusts the kubeconfig it read anonymously
only if `jws-kubeconfig-<id>` is the HS256 JWS of that kubeconfig keyed by the token secret: the
signature proves the publisher knew the secret. The form is RFC 7515 appendix F (the payload part
left out), with the header go-jose writes for upstream: `{"alg":"HS256","kid":"<id>"}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

__all__ = ["compute_detached_signature", "detached_token_is_valid"]

# go-jose refuses HS256 keys shorter than this, so upstream zero-pads the secret. HMAC pads keys
# with zeros to its block size anyway, so the padding changes nothing but is kept to mirror it.
_MIN_KEY_BYTES = 32


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compute_detached_signature(content: str, token_id: str, token_secret: str) -> str:
    """ComputeDetachedSignature: `<header>..<signature>`."""
    key = token_secret.encode()
    if len(key) < _MIN_KEY_BYTES:
        key = key.ljust(_MIN_KEY_BYTES, b"\0")
    # Go marshals the header map with sorted keys and no spaces.
    header = json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":"), sort_keys=True)
    protected = _b64url(header.encode())
    signing_input = f"{protected}.{_b64url(content.encode())}".encode("ascii")
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return f"{protected}..{_b64url(signature)}"


def detached_token_is_valid(detached_token: str, content: str, token_id: str, token_secret: str) -> bool:
    """DetachedTokenIsValid, compared in constant time."""
    expected = compute_detached_signature(content, token_id, token_secret)
    return hmac.compare_digest(detached_token.encode(), expected.encode())
