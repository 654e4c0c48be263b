"""The audit log of a real server driven by real kubectl: levels per policy rule, stages, the
Audit-ID header, and Secret data kept out of the file whatever the policy says."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BARE_ARGS, ServerProcess, start_server
from tests.integration.kubectl_helpers import Kubectl

pytestmark = pytest.mark.kubectl

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: []
rules:
- level: None
  nonResourceURLs: ["/readyz", "/livez", "/healthz"]
- level: RequestResponse
  namespaces: ["audit-rr"]
- level: Request
  namespaces: ["audit-req"]
- level: Metadata
  namespaces: ["audit-meta"]
  omitStages: ["RequestReceived"]
- level: None
  namespaces: ["audit-none"]
- level: Metadata
  omitStages: ["RequestReceived"]
"""

SECRET_VALUE = "s3cr3t-value-that-must-not-leak"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    base = tmp_path_factory.mktemp("audit")
    policy = base / "policy.yaml"
    policy.write_text(POLICY)
    log = base / "audit.log"
    proc = start_server(
        base / "data",
        *BARE_ARGS,
        "--audit-log-path",
        str(log),
        "--audit-policy-file",
        str(policy),
    )
    yield proc, log
    code = proc.stop()
    assert code == 0, proc.log()[-4000:]


@pytest.fixture
def kubectl(audited: tuple[ServerProcess, Path], tmp_path: Path) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl not installed")
    env = dict(os.environ)
    env["KUBECONFIG"] = str(audited[0].kubeconfig)
    env["KUBECACHEDIR"] = str(tmp_path / "cache")
    env["HOME"] = str(tmp_path)
    return Kubectl(binary, env)


def events(log: Path, predicate: Any, *, at_least: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The events matching, once at least `at_least` are in the file (the writer is a thread)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in map(json.loads, log.read_text().splitlines()) if predicate(e)]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def ref(event: dict[str, Any]) -> dict[str, Any]:
    return event.get("objectRef", {})


def configmap(namespace: str, name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"k": "v"},
        }
    )


@pytest.mark.parametrize(
    ("namespace", "level", "stages"),
    [
        ("audit-rr", "RequestResponse", {"RequestReceived", "ResponseComplete"}),
        ("audit-req", "Request", {"RequestReceived", "ResponseComplete"}),
        ("audit-meta", "Metadata", {"ResponseComplete"}),
    ],
)
def test_levels_for_create_get_delete(
    kubectl: Kubectl, audited: tuple[ServerProcess, Path], namespace: str, level: str, stages: set[str]
) -> None:
    _, log = audited
    kubectl.run("create", "namespace", namespace)
    kubectl.run("apply", "-f", "-", stdin=configmap(namespace, "cm1"))
    kubectl.run("get", "configmap", "cm1", "-n", namespace)
    kubectl.run("delete", "configmap", "cm1", "-n", namespace)

    def of(verb: str) -> Any:
        return lambda e: (
            e["verb"] == verb
            and ref(e).get("namespace") == namespace
            and ref(e).get("resource") == "configmaps"
        )

    created = events(log, of("create"), at_least=len(stages))
    assert {e["stage"] for e in created} == stages
    complete = next(e for e in created if e["stage"] == "ResponseComplete")
    assert complete["apiVersion"] == "audit.k8s.io/v1" and complete["kind"] == "Event"
    assert complete["level"] == level
    assert complete["responseStatus"]["code"] == 201
    assert complete["user"]["username"]
    assert complete["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert complete["userAgent"].startswith("kubectl")
    assert complete["sourceIPs"] == ["127.0.0.1"]
    assert complete["objectRef"] == {
        "resource": "configmaps",
        "namespace": namespace,
        "name": "cm1",
        "apiVersion": "v1",
    }
    assert complete["requestReceivedTimestamp"].endswith("Z") and "." in complete["stageTimestamp"]
    if level == "Metadata":
        assert "requestObject" not in complete and "responseObject" not in complete
    else:
        assert complete["requestObject"]["data"] == {"k": "v"}
    if level == "RequestResponse":
        assert complete["responseObject"]["metadata"]["name"] == "cm1"
    else:
        assert "responseObject" not in complete

    got = [e for e in events(log, of("get")) if e["stage"] == "ResponseComplete"]
    # kubectl apply looked for the object first (404), the get found it, delete --wait did not.
    assert [e["responseStatus"]["code"] for e in got][:2] == [404, 200]
    assert got[1]["objectRef"]["name"] == "cm1"
    deleted = [e for e in events(log, of("delete")) if e["stage"] == "ResponseComplete"]
    assert deleted and deleted[0]["responseStatus"]["code"] == 200


def test_level_none_and_errors(kubectl: Kubectl, audited: tuple[ServerProcess, Path]) -> None:
    _, log = audited
    kubectl.run("create", "namespace", "audit-none")
    kubectl.run("get", "configmaps", "-n", "audit-none")
    missing = kubectl.run("get", "configmap", "nope", "-n", "default", check=False)
    assert missing.returncode != 0
    failed = events(log, lambda e: ref(e).get("name") == "nope" and e["stage"] == "ResponseComplete")
    status = failed[0]["responseStatus"]
    assert status["code"] == 404 and status["reason"] == "NotFound" and status["status"] == "Failure"
    assert status["message"] == 'configmaps "nope" not found'
    assert not [e for e in events(log, lambda e: True) if ref(e).get("namespace") == "audit-none"]
    assert not [e for e in events(log, lambda e: True) if e["requestURI"].startswith("/readyz")]


def test_secret_data_never_logged(kubectl: Kubectl, audited: tuple[ServerProcess, Path]) -> None:
    _, log = audited
    kubectl.run("create", "namespace", "audit-rr", check=False)
    kubectl.run(
        "create", "secret", "generic", "s1", "-n", "audit-rr", f"--from-literal=password={SECRET_VALUE}"
    )
    kubectl.run("get", "secret", "s1", "-n", "audit-rr", "-o", "yaml")
    kubectl.run("get", "secrets", "-n", "audit-rr", "-o", "json")
    kubectl.run("create", "serviceaccount", "sa1", "-n", "audit-rr")
    token = kubectl.run("create", "token", "sa1", "-n", "audit-rr").stdout.strip()
    assert token
    secret_events = events(
        log, lambda e: ref(e).get("resource") == "secrets" and e["stage"] == "ResponseComplete", at_least=3
    )
    assert all(e["level"] == "Metadata" for e in secret_events)
    token_events = events(log, lambda e: ref(e).get("subresource") == "token")
    assert token_events and all(e["level"] == "Metadata" for e in token_events)
    text = log.read_text()
    encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
    assert SECRET_VALUE not in text and encoded not in text
    assert token not in text and token.split(".")[1] not in text


def test_watch_gets_response_started(kubectl: Kubectl, audited: tuple[ServerProcess, Path]) -> None:
    _, log = audited
    kubectl.run("create", "namespace", "audit-req", check=False)
    # The server ends the watch after timeoutSeconds: that is when ResponseComplete is logged.
    kubectl.run("get", "--raw", "/api/v1/namespaces/audit-req/configmaps?watch=true&timeoutSeconds=1")
    watch = events(
        log,
        lambda e: e["verb"] == "watch" and ref(e).get("namespace") == "audit-req",
        at_least=3,
    )
    stages = [e["stage"] for e in watch]
    assert stages[:2] == ["RequestReceived", "ResponseStarted"] and "ResponseComplete" in stages
    assert len({e["auditID"] for e in watch}) == 1


def test_audit_id_header_matches(audited: tuple[ServerProcess, Path]) -> None:
    proc, log = audited
    request = urllib.request.Request(f"{proc.url}/api/v1/namespaces/default/configmaps?limit=1")
    with urllib.request.urlopen(request, context=proc.ssl_context(), timeout=10) as response:
        audit_id = response.headers["Audit-ID"]
    assert audit_id
    found = events(log, lambda e: e["auditID"] == audit_id)
    assert found and found[0]["requestURI"] == "/api/v1/namespaces/default/configmaps?limit=1"
    assert found[0]["verb"] == "list"
    given = urllib.request.Request(f"{proc.url}/api/v1/namespaces", headers={"Audit-ID": "my-own-id"})
    with urllib.request.urlopen(given, context=proc.ssl_context(), timeout=10) as response:
        assert response.headers["Audit-ID"] == "my-own-id"
    assert events(log, lambda e: e["auditID"] == "my-own-id")


def test_impersonated_user_is_recorded(kubectl: Kubectl, audited: tuple[ServerProcess, Path]) -> None:
    _, log = audited
    kubectl.run("create", "namespace", "audit-meta", check=False)
    kubectl.run("--as", "jane", "--as-group", "devs", "get", "configmaps", "-n", "audit-meta", check=False)
    found = events(log, lambda e: "impersonatedUser" in e and ref(e).get("namespace") == "audit-meta")
    assert found[0]["impersonatedUser"] == {"username": "jane", "groups": ["devs", "system:authenticated"]}
    assert found[0]["user"]["username"] != "jane"
    assert found[0]["responseStatus"]["code"] == 403
    assert found[0]["annotations"]["authorization.k8s.io/decision"] == "forbid"


def test_failed_authentication_is_recorded(audited: tuple[ServerProcess, Path]) -> None:
    proc, log = audited
    context = ssl.create_default_context(cafile=str(proc.ca))
    request = urllib.request.Request(
        f"{proc.url}/api/v1/namespaces/default/pods", headers={"Authorization": "Bearer not-a-real-token"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, context=context, timeout=10)
    assert caught.value.code == 401
    audit_id = caught.value.headers["Audit-ID"]
    (event,) = events(log, lambda e: e["auditID"] == audit_id)
    assert event["stage"] == "ResponseStarted" and event["user"] == {}
    assert event["responseStatus"]["code"] == 401
    assert event["responseStatus"]["message"] == "Authentication failed, attempted: bearer"
    assert "not-a-real-token" not in log.read_text()
