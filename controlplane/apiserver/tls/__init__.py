"""The API server's TLS: upstream's client-certificate handling on pyOpenSSL.

`site.serving_site` is the listener, `transport` terminates TLS over memory BIOs, `context` holds
the OpenSSL settings and `verify` decides, after the handshake, whether a presented client
certificate chains to the cluster CA (a `VerifiedChain`) or is an authentication error.
"""

from __future__ import annotations

from controlplane.apiserver.tls.site import TLSSite, serving_site
from controlplane.apiserver.tls.transport import TLSServerProtocol, TLSTransport, client_certificate
from controlplane.apiserver.tls.verify import (
    CertificateRejected,
    ClientCAVerifier,
    ClientCertificate,
    VerifiedChain,
)

__all__ = [
    "CertificateRejected",
    "ClientCAVerifier",
    "ClientCertificate",
    "TLSServerProtocol",
    "TLSSite",
    "TLSTransport",
    "VerifiedChain",
    "client_certificate",
    "serving_site",
]
