"""The API server's OpenSSL context: upstream's TLS settings on pyOpenSSL.

Like kube-apiserver (`tls.RequestClientCert`), the server asks every client for a certificate and
completes the handshake whatever it presents; `verify.ClientCAVerifier` judges the certificate
afterwards, so a stranger's certificate earns a 401 from authentication instead of a TLS alert.
The stdlib `ssl` module cannot do this: it has no verify callback, so a certificate it requests
is a certificate it verifies. The CA names are still sent in the CertificateRequest, as Go's
`ClientCAs` does, so clients holding several certificates can pick the right one.

Everything else follows `pki.server_ssl_context` (the stdlib path): TLS 1.2 minimum, Python's
server cipher string, no compression, ALPN `http/1.1` only (aiohttp speaks HTTP/1.1), the same
serving certificate and key files. Session resumption is off: a resumed session carries the
client's leaf but not the intermediates it sent, and no client we serve (Go, urllib3, aiohttp)
resumes sessions with the API server anyway.
"""

from __future__ import annotations

from OpenSSL import SSL, crypto

from controlplane.apiserver.pki import PKI

__all__ = ["ALPN_PROTOCOL", "server_context"]

ALPN_PROTOCOL = b"http/1.1"
# CPython's default for server contexts (ssl._DEFAULT_CIPHERS plus its security level), so both
# paths offer the same suites.
_CIPHERS = b"@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM"
_SESSION_ID_CONTEXT = b"pinnace-apiserver"


def _accept_any(conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int) -> bool:
    # Verification happens after the handshake (verify.py); OpenSSL's own verdict is ignored, and
    # with no trust store loaded it stops at the first missing issuer instead of checking
    # signatures we are about to check again.
    return True


def _select_alpn(conn: SSL.Connection, offered: list[bytes]) -> bytes | SSL._NoOverlappingProtocols:
    return ALPN_PROTOCOL if ALPN_PROTOCOL in offered else SSL.NO_OVERLAPPING_PROTOCOLS


def server_context(pki: PKI) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(
        SSL.OP_NO_COMPRESSION
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | SSL.OP_SINGLE_DH_USE
        | SSL.OP_SINGLE_ECDH_USE
        | SSL.OP_NO_TICKET
        | SSL.OP_NO_RENEGOTIATION
    )
    ctx.set_cipher_list(_CIPHERS)
    ctx.use_certificate_chain_file(str(pki.serving_cert))
    ctx.use_privatekey_file(str(pki.serving_key))
    ctx.check_privatekey()
    ctx.load_client_ca(str(pki.ca_cert).encode())
    ctx.set_verify(SSL.VERIFY_PEER, _accept_any)
    ctx.set_session_id(_SESSION_ID_CONTEXT)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.set_alpn_select_callback(_select_alpn)
    return ctx
