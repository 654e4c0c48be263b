"""pods/log's pure parts: options, container choice, the kubelet's address, its errors; and the
kubelet client certificate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from multidict import MultiDict

from controlplane.api import errors
from controlplane.apiserver import kubelet_client, pki
from controlplane.apiserver.pod_logs import LogOptions, choose_container, kubelet_error, parse_log_options


def test_options_are_forwarded_as_upstream_orders_them() -> None:
    query = MultiDict(
        {
            "container": "c",
            "follow": "true",
            "timestamps": "1",
            "tailLines": "10",
            "limitBytes": "500",
            "previous": "false",
            "sinceTime": "2026-01-02T03:04:05+01:00",
        }
    )
    opts = parse_log_options(query, "p")
    assert opts.container == "c"
    assert opts.kubelet_query() == [
        ("follow", "true"),
        ("limitBytes", "500"),
        ("sinceTime", "2026-01-02T02:04:05Z"),
        ("tailLines", "10"),
        ("timestamps", "true"),
    ]
    assert LogOptions(since_seconds=30, previous=True).kubelet_query() == [
        ("previous", "true"),
        ("sinceSeconds", "30"),
    ]
    assert LogOptions().kubelet_query() == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            {"tailLines": "-1"},
            'PodLogOptions "p" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0',
        ),
        (
            {"limitBytes": "0"},
            'PodLogOptions "p" is invalid: limitBytes: Invalid value: 0: must be greater than 0',
        ),
        (
            {"sinceSeconds": "0"},
            'PodLogOptions "p" is invalid: sinceSeconds: Invalid value: 0: must be greater than 0',
        ),
        (
            {"sinceSeconds": "5", "sinceTime": "2026-01-01T00:00:00Z"},
            'PodLogOptions "p" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified',
        ),
    ],
)
def test_invalid_options_are_422(query: dict[str, str], message: str) -> None:
    with pytest.raises(errors.Invalid) as info:
        parse_log_options(MultiDict(query), "p")
    assert info.value.message == message
    assert info.value.kind == "PodLogOptions"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"follow": "yes"}, 'strconv.ParseBool: parsing "yes": invalid syntax'),
        ({"tailLines": "ten"}, 'strconv.ParseInt: parsing "ten": invalid syntax'),
    ],
)
def test_undecodable_options_are_400(query: dict[str, str], message: str) -> None:
    with pytest.raises(errors.BadRequest) as info:
        parse_log_options(MultiDict(query), "p")
    assert info.value.message == message


def _pod(*names: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": n} for n in names]}
    if init:
        spec["initContainers"] = [{"name": n} for n in init]
    return {"metadata": {"name": "p"}, "spec": spec}


def test_container_choice() -> None:
    assert choose_container(_pod("only"), "") == "only"
    assert choose_container(_pod("a", "b", init=("setup",)), "setup") == "setup"
    with pytest.raises(errors.BadRequest) as info:
        choose_container(_pod("a", "b", init=("setup",)), "")
    assert info.value.message == "a container name must be specified for pod p, choose one of: [setup a b]"
    with pytest.raises(errors.BadRequest) as info:
        choose_container(_pod("a"), "nope")
    assert info.value.message == "container nope is not valid for pod p"


def test_kubelet_address_prefers_internal_ip_and_the_reported_port() -> None:
    node = {
        "status": {
            "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "10.0.0.5"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10255}},
        }
    }
    assert kubelet_client.kubelet_address(node) == ("10.0.0.5", 10255)
    assert kubelet_client.kubelet_address(
        {"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}}
    ) == (
        "n1",
        10250,
    )
    with pytest.raises(kubelet_client.UnknownError) as info:
        kubelet_client.kubelet_address(
            {"status": {"addresses": [{"type": "InternalDNS", "address": "x.local"}]}}
        )
    assert info.value.message == "no preferred addresses found; known addresses: [{InternalDNS x.local}]"
    assert info.value.to_status()["code"] == 500 and "reason" not in info.value.to_status()


def test_kubelet_refusals_map_like_generic_response_checker() -> None:
    bad = kubelet_error(400, 'container "c" in pod "p" is waiting to start: ContainerCreating', "p")
    assert isinstance(bad, errors.BadRequest)
    assert bad.message == 'container "c" in pod "p" is waiting to start: ContainerCreating'
    missing = kubelet_error(404, "pod not found", "p")
    assert isinstance(missing, errors.NotFound)
    assert missing.message == "the server could not find the requested resource ( pods/log p)"
    assert missing.to_status()["details"] == {"name": "p", "kind": "pods/log"}
    denied = kubelet_error(403, "Forbidden (user=x, verb=get, resource=nodes, subresource=proxy)", "p")
    assert isinstance(denied, errors.Forbidden) and denied.message.startswith("Forbidden (user=x")
    broken = kubelet_error(500, "boom", "p")
    assert isinstance(broken, errors.InternalError) and broken.message == "Internal error occurred: boom"
    odd = kubelet_error(502, "bad gateway", "p")
    assert odd.code == 500 and odd.message.startswith('an error on the server ("bad gateway")')


def _subject(cert_path: Path) -> tuple[str, list[str]]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return str(cn), orgs


def test_kubelet_client_certificate_is_issued_once_and_renewed_near_expiry(tmp_path: Path) -> None:
    credentials = pki.ensure_pki(tmp_path / "pki", hostnames=["localhost"], ips=["127.0.0.1"])
    cert, key = kubelet_client.ensure_client_cert(credentials)
    assert cert == tmp_path / "pki" / "apiserver-kubelet-client.crt" and key.exists()
    assert _subject(cert) == ("kube-apiserver-kubelet-client", ["system:masters"])
    assert oct(cert.stat().st_mode & 0o777) == "0o600"
    first = cert.read_bytes()
    kubelet_client.ensure_client_cert(credentials)
    assert cert.read_bytes() == first  # reused while it fits
    later = datetime.now(UTC) + timedelta(days=340)
    kubelet_client.ensure_client_cert(credentials, now=later)
    assert cert.read_bytes() != first  # within the renewal window: re-issued
    context = kubelet_client.ssl_context(cert, key)
    assert context.check_hostname is False
