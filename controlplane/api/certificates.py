"""CertificateSigningRequests (certificates.k8s.io/v1) as pure rules: parsing the PKCS#10 request,
validation worded as upstream's pkg/apis/certificates/validation, the create/update strategies of
pkg/registry/certificates/certificates/strategy.go, and the checks upstream's signers and approver
apply to the shape of a request (pkg/apis/certificates/v1 helpers: ValidateKubeletClientCSR,
ValidateKubeletServingCSR).

Objects are wire dicts: `spec.request` and `status.certificate` are base64 of PEM bytes, as the
JSON encoding of Go's []byte.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from controlplane.api import errors
from controlplane.api.errors import Cause

__all__ = [
    "ALL_USAGES",
    "APPROVED",
    "DENIED",
    "FAILED",
    "KUBELET_SERVING",
    "KUBE_APISERVER_CLIENT",
    "KUBE_APISERVER_CLIENT_KUBELET",
    "LEGACY_UNKNOWN",
    "CSRError",
    "ParsedCSR",
    "approval_state",
    "decode_bytes",
    "has_true_condition",
    "is_kubernetes_signer",
    "parse_csr",
    "prepare_for_create",
    "prepare_for_update",
    "validate",
    "validate_kubelet_client",
    "validate_kubelet_serving",
    "validate_signer_name",
]

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"

APPROVED = "Approved"
DENIED = "Denied"
FAILED = "Failed"

# upstream's allValidUsages, sorted as sets.String.List() prints them
ALL_USAGES: tuple[str, ...] = tuple(
    sorted(
        (
            "signing",
            "digital signature",
            "content commitment",
            "key encipherment",
            "key agreement",
            "data encipherment",
            "cert sign",
            "crl sign",
            "encipher only",
            "decipher only",
            "any",
            "server auth",
            "client auth",
            "code signing",
            "email protection",
            "s/mime",
            "ipsec end system",
            "ipsec tunnel",
            "ipsec user",
            "timestamping",
            "ocsp signing",
            "microsoft sgc",
            "netscape sgc",
        )
    )
)
_TRUE_ONLY_TYPES = (APPROVED, DENIED, FAILED)
_ALL_STATUSES = ("False", "True", "Unknown")

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_MAX = 63
_SUBDOMAIN_MAX = 253


class CSRError(ValueError):
    """A request that does not parse or does not pass a signer's checks; the text is upstream's."""


# --- bytes and PEM ------------------------------------------------------------------------------


def decode_bytes(value: Any) -> bytes:
    """A []byte field from its JSON form (base64); anything else is empty."""
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


@dataclass(frozen=True)
class _PEMBlock:
    type: str
    headers: bool
    data: bytes


_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def _pem_blocks(data: bytes) -> list[_PEMBlock]:
    """encoding/pem.Decode, repeated: blocks in order; a block whose body is not base64 ends the scan."""
    blocks: list[_PEMBlock] = []
    for match in _PEM_BLOCK.finditer(data):
        body = match.group(2)
        headers = False
        lines = body.splitlines()
        if lines and b":" in lines[0]:
            headers = True
            while lines and lines[0].strip():
                lines.pop(0)
        try:
            decoded = base64.b64decode(b"".join(line.strip() for line in lines), validate=True)
        except (binascii.Error, ValueError):
            break
        blocks.append(_PEMBlock(match.group(1).decode("ascii", "replace"), headers, decoded))
    return blocks


@dataclass(frozen=True)
class ParsedCSR:
    """What the checks read from a PKCS#10 request (Go's x509.CertificateRequest fields)."""

    csr: x509.CertificateSigningRequest
    common_name: str
    organizations: tuple[str, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    emails: tuple[str, ...]
    uris: tuple[str, ...]

    @property
    def is_rsa(self) -> bool:
        return isinstance(self.csr.public_key(), rsa.RSAPublicKey)


def parse_csr(pem_bytes: bytes) -> ParsedCSR:
    """certificates.ParseCSR: the first PEM block must be a CERTIFICATE REQUEST that parses."""
    blocks = _pem_blocks(pem_bytes)
    if not blocks or blocks[0].type != "CERTIFICATE REQUEST":
        raise CSRError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_der_x509_csr(blocks[0].data)
        subject = csr.subject
        common = [a.value for a in subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
        orgs = [a.value for a in subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)]
        try:
            sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = tuple(sans.get_values_for_type(x509.DNSName))
            ips = tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
            emails = tuple(sans.get_values_for_type(x509.RFC822Name))
            uris = tuple(sans.get_values_for_type(x509.UniformResourceIdentifier))
        except x509.ExtensionNotFound:
            dns, ips, emails, uris = (), (), (), ()
    except (ValueError, TypeError) as exc:
        raise CSRError(f"x509: malformed certificate request: {exc}") from exc
    return ParsedCSR(
        csr=csr,
        common_name=str(common[0]) if common else "",
        organizations=tuple(str(o) for o in orgs),
        dns_names=dns,
        ip_addresses=ips,
        emails=emails,
        uris=uris,
    )


def _check_signature(parsed: ParsedCSR) -> None:
    if not parsed.csr.is_signature_valid:
        raise CSRError(
            "crypto/rsa: verification error" if parsed.is_rsa else "x509: ECDSA verification failure"
        )


def _go_bytes(data: bytes) -> str:
    """Go's %#v of a []byte, which is how field.Invalid renders spec.request."""
    if not data:
        return "[]byte(nil)"
    return "[]byte{" + ", ".join(f"0x{b:x}" for b in data) + "}"


def _go_list(values: Iterable[str]) -> str:
    return "[" + " ".join(values) + "]"


# --- signer names -------------------------------------------------------------------------------


def is_kubernetes_signer(signer_name: str) -> bool:
    host = signer_name.partition("/")[0]
    return host == "kubernetes.io" or host.endswith(".kubernetes.io")


def _dns1123_label_errors(value: str) -> list[str]:
    msgs = []
    if len(value) > _LABEL_MAX:
        msgs.append(f"must be no more than {_LABEL_MAX} characters")
    if not _DNS1123_LABEL.fullmatch(value):
        msgs.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
            "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
            "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    return msgs


def _dns1123_subdomain_errors(value: str) -> list[str]:
    msgs = []
    if len(value) > _SUBDOMAIN_MAX:
        msgs.append(f"must be no more than {_SUBDOMAIN_MAX} characters")
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        msgs.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
            "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
            "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return msgs


def _q(value: Any) -> str:
    """field.Error's rendering of a value: strings quoted, numbers plain."""
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return str(value)


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(errors.FIELD_VALUE_INVALID, f"Invalid value: {_q(value)}: {detail}", path)


def _required(path: str) -> Cause:
    return Cause(errors.FIELD_VALUE_REQUIRED, "Required value", path)


def _forbidden(path: str, detail: str) -> Cause:
    return Cause(errors.FIELD_VALUE_FORBIDDEN, f"Forbidden: {detail}", path)


def _not_supported(path: str, value: Any, valid: Sequence[str]) -> Cause:
    quoted = ", ".join(f'"{v}"' for v in valid)
    return Cause(
        errors.FIELD_VALUE_NOT_SUPPORTED, f"Unsupported value: {_q(value)}: supported values: {quoted}", path
    )


def _duplicate(path: str, value: Any) -> Cause:
    return Cause(errors.FIELD_VALUE_DUPLICATE, f"Duplicate value: {_q(value)}", path)


def _too_long(path: str, max_length: int) -> Cause:
    return Cause(errors.FIELD_VALUE_TOO_LONG, f"Too long: may not be more than {max_length} bytes", path)


def validate_signer_name(path: str, signer_name: str) -> list[Cause]:
    """apivalidation.ValidateSignerName."""
    if not signer_name:
        return [_required(path)]
    segments = signer_name.split("/")
    if len(segments) != 2:
        return [
            _invalid(
                path,
                signer_name,
                "must be a fully qualified domain and path of the form 'example.com/signer-name'",
            )
        ]
    causes: list[Cause] = []
    domain, rest = segments
    if len(domain) > _SUBDOMAIN_MAX:
        causes.append(_too_long(path, _SUBDOMAIN_MAX))
    labels = domain.split(".")
    for label in labels:
        msgs = _dns1123_label_errors(label)
        if msgs:
            causes.extend(_invalid(path, domain, f'validating label "{label}": {m}') for m in msgs)
            break
    if len(labels) < 2:
        causes.append(
            _invalid(path, domain, "should be a domain with at least two segments separated by dots")
        )
    for label in rest.split("."):
        msgs = _dns1123_subdomain_errors(label)
        if msgs:
            causes.extend(_invalid(path, rest, f'validating label "{label}": {m}') for m in msgs)
            break
    max_length = _SUBDOMAIN_MAX + (_SUBDOMAIN_MAX + _LABEL_MAX + 1) + 1
    if len(signer_name) > max_length:
        causes.append(_too_long(path, max_length))
    return causes


# --- conditions ---------------------------------------------------------------------------------


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _conditions(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [c for c in _l(_d(obj.get("status")).get("conditions")) if isinstance(c, dict)]


def _of_type(obj: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    return [c for c in _conditions(obj) if c.get("type") == kind]


def has_true_condition(obj: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("status") == "True" for c in _of_type(obj, kind))


def approval_state(obj: Mapping[str, Any]) -> tuple[bool, bool]:
    """(approved, denied), as certificates.GetCertApprovalCondition."""
    return bool(_of_type(obj, APPROVED)), bool(_of_type(obj, DENIED))


# --- validation ---------------------------------------------------------------------------------


def _validate_certificate(data: bytes) -> str:
    """validateCertificate: empty, or only CERTIFICATE blocks that parse; the error text or ''."""
    if not data:
        return ""
    blocks = _pem_blocks(data)
    for block in blocks:
        if block.type != "CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{block.type}"'
        if block.headers:
            return "no PEM block headers are permitted"
        try:
            x509.load_der_x509_certificate(block.data)
        except ValueError as exc:
            return f"x509: malformed certificate: {exc}"
    if not blocks:
        return "must contain at least one CERTIFICATE PEM block"
    return ""


def _validate_conditions(
    obj: Mapping[str, Any], allow_both: bool, allow_dup: bool, allow_empty: bool
) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    has_approved = has_denied = False
    for i, cond in enumerate(_conditions(obj)):
        path = f"status.conditions[{i}]"
        kind = str(cond.get("type") or "")
        if not allow_empty and not kind:
            causes.append(_required(f"{path}.type"))
        status = cond.get("status") or ""
        allowed = ("True",) if kind in _TRUE_ONLY_TYPES else _ALL_STATUSES
        if not status:
            causes.append(_required(f"{path}.status"))
        elif status not in allowed:
            causes.append(_not_supported(f"{path}.status", status, allowed))
        if not allow_both:
            if kind == APPROVED:
                has_approved = True
                if has_denied:
                    causes.append(
                        _invalid(
                            f"{path}.type", kind, "Approved and Denied conditions are mutually exclusive"
                        )
                    )
            elif kind == DENIED:
                has_denied = True
                if has_approved:
                    causes.append(
                        _invalid(
                            f"{path}.type", kind, "Approved and Denied conditions are mutually exclusive"
                        )
                    )
        if not allow_dup:
            if kind in seen:
                causes.append(_duplicate(f"{path}.type", kind))
            seen.add(kind)
    return causes


def _validate_object(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """validateCertificateSigningRequest with the compatibility options upstream derives from `old`."""
    spec = _d(obj.get("spec"))
    old_spec = _d(old.get("spec")) if old is not None else {}
    causes: list[Cause] = []
    request = decode_bytes(spec.get("request"))
    try:
        _check_signature(parse_csr(request))
    except CSRError as exc:
        causes.append(
            Cause(errors.FIELD_VALUE_INVALID, f"Invalid value: {_go_bytes(request)}: {exc}", "spec.request")
        )
    usages = [u for u in _l(spec.get("usages"))]
    old_usages = [u for u in _l(old_spec.get("usages"))]
    if not usages:
        causes.append(_required("spec.usages"))
    if not (old is not None and any(u not in ALL_USAGES for u in old_usages)):
        causes.extend(
            _not_supported(f"spec.usages[{i}]", u, ALL_USAGES)
            for i, u in enumerate(usages)
            if u not in ALL_USAGES
        )
    if not (old is not None and len(set(map(str, old_usages))) != len(old_usages)):
        seen: set[str] = set()
        for i, u in enumerate(usages):
            if str(u) in seen:
                causes.append(_duplicate(f"spec.usages[{i}]", u))
            seen.add(str(u))
    signer = spec.get("signerName")
    signer = signer if isinstance(signer, str) else ""
    if signer == LEGACY_UNKNOWN and old_spec.get("signerName") != LEGACY_UNKNOWN:
        causes.append(
            _invalid("spec.signerName", signer, "the legacy signerName is not allowed via this API version")
        )
    else:
        causes.extend(validate_signer_name("spec.signerName", signer))
    expiration = spec.get("expirationSeconds")
    if isinstance(expiration, int) and not isinstance(expiration, bool) and expiration < 600:
        causes.append(
            _invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 600 seconds (10 minutes)",
            )
        )
    old_conditions = _conditions(old) if old is not None else []
    old_types = [str(c.get("type") or "") for c in old_conditions]
    causes.extend(
        _validate_conditions(
            obj,
            allow_both=APPROVED in old_types and DENIED in old_types,
            allow_dup=len(set(old_types)) != len(old_types),
            allow_empty="" in old_types,
        )
    )
    certificate = _d(obj.get("status")).get("certificate")
    old_certificate = _d(old.get("status")).get("certificate") if old is not None else None
    arbitrary = old is not None and (
        certificate == old_certificate or bool(_validate_certificate(decode_bytes(old_certificate)))
    )
    if not arbitrary:
        problem = _validate_certificate(decode_bytes(certificate))
        if problem:
            causes.append(_invalid("status.certificate", "<certificate data>", problem))
    return causes


def validate(
    obj: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    *,
    allow_approval: bool = False,
    allow_certificate: bool = False,
) -> list[Cause]:
    """The CSR rules (object metadata is checked by the caller). On update, `allow_approval` is the
    approval subresource's licence to change Approved/Denied conditions and `allow_certificate`
    the status subresource's to set status.certificate once."""
    causes = _validate_object(obj, old)
    if old is None:
        return causes
    for kind in (APPROVED, DENIED, FAILED):
        if len(_of_type(obj, kind)) < len(_of_type(old, kind)):
            causes.append(
                _forbidden("status.conditions", f'updates may not remove a condition of type "{kind}"')
            )
    if not allow_approval:
        for kind in (APPROVED, DENIED):
            new_c, old_c = _of_type(obj, kind), _of_type(old, kind)
            if len(new_c) > len(old_c):
                causes.append(
                    _forbidden("status.conditions", f'updates may not add a condition of type "{kind}"')
                )
            elif len(new_c) == len(old_c) and new_c != old_c:
                causes.append(
                    _forbidden("status.conditions", f'updates may not modify a condition of type "{kind}"')
                )
    new_cert = decode_bytes(_d(obj.get("status")).get("certificate"))
    old_cert = decode_bytes(_d(old.get("status")).get("certificate"))
    if new_cert != old_cert:
        if not allow_certificate:
            causes.append(_forbidden("status.certificate", "updates may not set certificate content"))
        elif old_cert:
            causes.append(
                _forbidden("status.certificate", "updates may not modify existing certificate content")
            )
    return causes


# --- strategy -----------------------------------------------------------------------------------


def prepare_for_create(obj: dict[str, Any], user: Mapping[str, Any] | None) -> None:
    """The requester's identity replaces whatever the client wrote; status starts empty."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    for key in ("username", "uid", "groups", "extra"):
        spec.pop(key, None)
    if user is not None:
        if user.get("username"):
            spec["username"] = str(user["username"])
        if user.get("uid"):
            spec["uid"] = str(user["uid"])
        groups = list(user.get("groups") or [])
        if groups:
            spec["groups"] = groups
        extra = {str(k): list(v) for k, v in dict(user.get("extra") or {}).items()}
        if extra:
            spec["extra"] = extra
    obj["status"] = {}


def _populate_timestamps(new: dict[str, Any], old: Mapping[str, Any], now: str) -> None:
    old_conditions = _conditions(old)
    for cond in _conditions(new):
        if not cond.get("lastUpdateTime"):
            cond["lastUpdateTime"] = now
        if not cond.get("lastTransitionTime"):
            transition = now
            for prior in old_conditions:
                if (
                    prior.get("type") == cond.get("type")
                    and prior.get("status") == cond.get("status")
                    and prior.get("lastTransitionTime")
                ):
                    transition = prior["lastTransitionTime"]
                    break
            cond["lastTransitionTime"] = transition


def _preserve(new: dict[str, Any], old: Mapping[str, Any], kind: str) -> None:
    old_idx = [i for i, c in enumerate(_conditions(old)) if c.get("type") == kind]
    conditions = _l(_d(new.get("status")).get("conditions"))
    new_idx = [i for i, c in enumerate(conditions) if isinstance(c, dict) and c.get("type") == kind]
    if len(old_idx) != len(new_idx):
        return  # added or removed: validation refuses it
    old_conditions = _conditions(old)
    for o, n in zip(old_idx, new_idx, strict=True):
        conditions[n] = copy.deepcopy(old_conditions[o])


def prepare_for_update(new: dict[str, Any], old: Mapping[str, Any], subresource: str, now: str) -> None:
    """The three strategies: the main resource changes neither spec nor status, `status` keeps the
    spec and the approval conditions, `approval` changes only the conditions."""
    new["spec"] = copy.deepcopy(old.get("spec", {}))
    if subresource == "status":
        if not isinstance(new.get("status"), dict):
            new["status"] = {}
        _preserve(new, old, APPROVED)
        _preserve(new, old, DENIED)
        _populate_timestamps(new, old, now)
    elif subresource == "approval":
        _populate_timestamps(new, old, now)
        conditions = _d(new.get("status")).get("conditions")
        status = copy.deepcopy(_d(old.get("status")))
        if conditions:
            status["conditions"] = conditions
        else:
            status.pop("conditions", None)
        new["status"] = status
    elif "status" in old:
        new["status"] = copy.deepcopy(old["status"])
    else:
        new.pop("status", None)


# --- signer checks (pkg/apis/certificates/v1 helpers) ---------------------------------------------

_KUBELET_CLIENT_USAGES = frozenset({"digital signature", "key encipherment", "client auth"})
_KUBELET_CLIENT_USAGES_NO_RSA = frozenset({"digital signature", "client auth"})
_KUBELET_SERVING_USAGES = frozenset({"digital signature", "key encipherment", "server auth"})
_KUBELET_SERVING_USAGES_NO_RSA = frozenset({"digital signature", "server auth"})
NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"


def validate_kubelet_client(parsed: ParsedCSR, usages: Iterable[str]) -> None:
    """ValidateKubeletClientCSR: raises CSRError with upstream's text."""
    if list(parsed.organizations) != [NODES_GROUP]:
        raise CSRError("subject organization is not system:nodes")
    if parsed.dns_names:
        raise CSRError("DNS subjectAltNames are not allowed")
    if parsed.emails:
        raise CSRError("Email subjectAltNames are not allowed")
    if parsed.ip_addresses:
        raise CSRError("IP subjectAltNames are not allowed")
    if parsed.uris:
        raise CSRError("URI subjectAltNames are not allowed")
    if not parsed.common_name.startswith(NODE_USER_PREFIX):
        raise CSRError("subject common name does not begin with system:node:")
    given = frozenset(usages)
    if given not in (_KUBELET_CLIENT_USAGES, _KUBELET_CLIENT_USAGES_NO_RSA):
        raise CSRError(f"usages did not match {_go_list(sorted(_KUBELET_CLIENT_USAGES))}")


def validate_kubelet_serving(parsed: ParsedCSR, usages: Iterable[str]) -> None:
    """ValidateKubeletServingCSR: raises CSRError with upstream's text."""
    if list(parsed.organizations) != [NODES_GROUP]:
        raise CSRError("subject organization is not system:nodes")
    if not parsed.dns_names and not parsed.ip_addresses:
        raise CSRError("DNS or IP subjectAltName is required")
    if parsed.emails:
        raise CSRError("Email subjectAltNames are not allowed")
    if parsed.uris:
        raise CSRError("URI subjectAltNames are not allowed")
    given = frozenset(usages)
    if given not in (_KUBELET_SERVING_USAGES, _KUBELET_SERVING_USAGES_NO_RSA):
        raise CSRError(f"usages did not match {_go_list(sorted(_KUBELET_SERVING_USAGES))}")
    if not parsed.common_name.startswith(NODE_USER_PREFIX):
        raise CSRError("subject common name does not begin with system:node:")
