"""CertificateSigningRequest validation and strategies, as upstream's validation.go and
strategy.go word and apply them."""

from __future__ import annotations

import base64
import copy
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api import certificates as certapi
from controlplane.api import validation
from controlplane.api.resources import default_registry

from .helpers import approved, b64, csr_object, csr_pem, make_ca

INFO = default_registry().get("certificates.k8s.io", "v1", "certificatesigningrequests")
PEM = csr_pem("alice", ["devs"])


def messages(causes: list[validation.Cause]) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in causes]


def test_a_well_formed_request_is_valid() -> None:
    assert INFO is not None
    assert validation.validate(INFO, csr_object(PEM)) == []


def test_request_must_be_a_pem_certificate_request() -> None:
    obj = csr_object(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    [(field, message)] = messages(certapi.validate(obj, None))
    assert field == "spec.request"
    assert message.startswith("Invalid value: []byte{0x2d, 0x2d")
    assert message.endswith(": PEM block type must be CERTIFICATE REQUEST")
    garbage = csr_object(b"not pem")
    assert messages(certapi.validate(garbage, None))[0][1].endswith(
        "PEM block type must be CERTIFICATE REQUEST"
    )


def test_a_tampered_signature_is_refused() -> None:
    body = PEM.split(b"\n")
    der = bytearray(base64.b64decode(b"".join(body[1:-2])))
    der[-5] ^= 0xFF  # inside the signature
    tampered = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(der))
        + b"-----END CERTIFICATE REQUEST-----\n"
    )
    causes = certapi.validate(csr_object(tampered), None)
    assert [c.field for c in causes] == ["spec.request"]


def test_usages_required_known_and_unique() -> None:
    assert messages(certapi.validate(csr_object(PEM, usages=()), None)) == [("spec.usages", "Required value")]
    [(field, message)] = messages(certapi.validate(csr_object(PEM, usages=("client auth", "flying")), None))
    assert field == "spec.usages[1]"
    assert message.startswith(
        'Unsupported value: "flying": supported values: "any", "cert sign", "client auth"'
    )
    assert messages(certapi.validate(csr_object(PEM, usages=("client auth", "client auth")), None)) == [
        ("spec.usages[1]", 'Duplicate value: "client auth"')
    ]


@pytest.mark.parametrize(
    ("signer", "expected"),
    [
        ("", [("spec.signerName", "Required value")]),
        (
            "example",
            [
                (
                    "spec.signerName",
                    "Invalid value: \"example\": must be a fully qualified domain and path of the form 'example.com/signer-name'",
                )
            ],
        ),
        (
            "example/foo",
            [
                (
                    "spec.signerName",
                    'Invalid value: "example": should be a domain with at least two segments separated by dots',
                )
            ],
        ),
        ("example.com/foo", []),
        ("example.com/a.b", []),
        (
            "kubernetes.io/legacy-unknown",
            [
                (
                    "spec.signerName",
                    'Invalid value: "kubernetes.io/legacy-unknown": the legacy signerName is not allowed via this API version',
                )
            ],
        ),
    ],
)
def test_signer_name(signer: str, expected: list[tuple[str, str]]) -> None:
    assert messages(certapi.validate(csr_object(PEM, signer=signer), None)) == expected


def test_signer_name_with_bad_label() -> None:
    [(field, message)] = messages(certapi.validate(csr_object(PEM, signer="Example.com/foo"), None))
    assert field == "spec.signerName"
    assert message.startswith(
        'Invalid value: "Example.com": validating label "Example": a lowercase RFC 1123 label'
    )


def test_expiration_seconds_minimum() -> None:
    assert messages(certapi.validate(csr_object(PEM, expiration=599), None)) == [
        (
            "spec.expirationSeconds",
            "Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)",
        )
    ]
    assert certapi.validate(csr_object(PEM, expiration=600), None) == []


def test_conditions_approved_and_denied_are_mutually_exclusive_and_true_only() -> None:
    denied = {"type": "Denied", "status": "True", "reason": "No"}
    obj = csr_object(PEM, conditions=[approved(), denied])
    assert messages(certapi.validate(obj, None)) == [
        (
            "status.conditions[1].type",
            'Invalid value: "Denied": Approved and Denied conditions are mutually exclusive',
        )
    ]
    false_approval = csr_object(PEM, conditions=[{"type": "Approved", "status": "False"}])
    assert messages(certapi.validate(false_approval, None)) == [
        ("status.conditions[0].status", 'Unsupported value: "False": supported values: "True"')
    ]
    dup = csr_object(PEM, conditions=[approved(), approved()])
    assert ("status.conditions[1].type", 'Duplicate value: "Approved"') in messages(
        certapi.validate(dup, None)
    )


def test_approval_conditions_change_only_through_approval() -> None:
    old = csr_object(PEM)
    new = csr_object(PEM, conditions=[approved()])
    assert messages(certapi.validate(new, old, allow_certificate=True)) == [
        ("status.conditions", 'Forbidden: updates may not add a condition of type "Approved"')
    ]
    assert certapi.validate(new, old, allow_approval=True) == []
    # once there, it cannot be removed, not even through approval
    assert messages(certapi.validate(old, new, allow_approval=True)) == [
        ("status.conditions", 'Forbidden: updates may not remove a condition of type "Approved"')
    ]
    changed = csr_object(PEM, conditions=[approved("other")])
    assert messages(certapi.validate(changed, new, allow_certificate=True)) == [
        ("status.conditions", 'Forbidden: updates may not modify a condition of type "Approved"')
    ]


def test_certificate_set_once_through_status_only() -> None:
    ca = make_ca()
    parsed = certapi.parse_csr(PEM)
    pem = ca.sign(parsed, ["client auth"], timedelta(hours=1), ca.certificate.not_valid_before_utc)
    old = csr_object(PEM, conditions=[approved()])
    new = copy.deepcopy(old)
    new["status"]["certificate"] = b64(pem)
    assert certapi.validate(new, old, allow_certificate=True) == []
    assert messages(certapi.validate(new, old, allow_approval=True)) == [
        ("status.certificate", "Forbidden: updates may not set certificate content")
    ]
    other = copy.deepcopy(new)
    other["status"]["certificate"] = b64(pem + pem)
    assert messages(certapi.validate(other, new, allow_certificate=True)) == [
        ("status.certificate", "Forbidden: updates may not modify existing certificate content")
    ]
    junk = copy.deepcopy(old)
    junk["status"]["certificate"] = b64(b"junk")
    assert messages(certapi.validate(junk, old, allow_certificate=True)) == [
        (
            "status.certificate",
            'Invalid value: "<certificate data>": must contain at least one CERTIFICATE PEM block',
        )
    ]


def test_create_takes_the_requester_not_the_client() -> None:
    obj = csr_object(PEM, username="mallory", conditions=[approved()])
    obj["spec"]["extra"] = {"x": ["y"]}
    certapi.prepare_for_create(obj, {"username": "alice", "uid": "u1", "groups": ["devs"], "extra": {}})
    assert obj["spec"]["username"] == "alice" and obj["spec"]["uid"] == "u1"
    assert obj["spec"]["groups"] == ["devs"] and "extra" not in obj["spec"]
    assert obj["status"] == {}


def test_update_strategies() -> None:
    old = csr_object(PEM, username="alice", conditions=[approved()])
    old["status"]["conditions"][0]["lastUpdateTime"] = "2027-01-01T00:00:00Z"
    old["status"]["conditions"][0]["lastTransitionTime"] = "2027-01-01T00:00:00Z"
    # main resource: neither spec nor status change
    new = copy.deepcopy(old)
    new["spec"]["usages"] = ["server auth"]
    new["status"] = {"certificate": "eA=="}
    certapi.prepare_for_update(new, old, "", "2027-01-02T00:00:00Z")
    assert new["spec"] == old["spec"] and new["status"] == old["status"]
    # status: approval conditions are kept as they were, other conditions get timestamps
    new = copy.deepcopy(old)
    new["status"]["conditions"][0]["message"] = "rewritten"
    new["status"]["conditions"].append({"type": "Failed", "status": "True", "reason": "X"})
    certapi.prepare_for_update(new, old, "status", "2027-01-02T00:00:00Z")
    assert new["status"]["conditions"][0] == old["status"]["conditions"][0]
    assert new["status"]["conditions"][1]["lastUpdateTime"] == "2027-01-02T00:00:00Z"
    # approval: only conditions change
    new = copy.deepcopy(old)
    new["status"]["certificate"] = "eA=="
    new["status"]["conditions"].append({"type": "Denied", "status": "True"})
    certapi.prepare_for_update(new, old, "approval", "2027-01-02T00:00:00Z")
    assert "certificate" not in new["status"]
    assert [c["type"] for c in new["status"]["conditions"]] == ["Approved", "Denied"]


@given(st.binary(max_size=200), st.lists(st.text(max_size=20), max_size=4), st.text(max_size=40))
def test_validation_never_crashes(request: bytes, usages: list[str], signer: str) -> None:
    obj = csr_object(request, signer=signer, usages=usages)
    certapi.validate(obj, None)
    certapi.validate(obj, csr_object(PEM), allow_approval=True)
