"""`pinnace token create|list|delete` against a real server: the printed token authenticates as
its bootstrap identity, the join command pins the CA by the hash openssl computes, and a deleted
token is refused."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

from .conftest import REPO, ServerProcess
from .kubectl_helpers import describe


def pinnace(server: ServerProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "controlplane", "token", *args, "--kubeconfig", str(server.kubeconfig)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(describe(result))
    return result


def whoami(server: ServerProcess, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            os.devnull,
            "--server",
            server.url,
            "--certificate-authority",
            str(server.ca),
            "--token",
            token,
            "auth",
            "whoami",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HOME": str(server.data_dir.parent)},
    )


def openssl_spki_hash(ca: str) -> str:
    pub = subprocess.run(
        ["openssl", "x509", "-in", ca, "-pubkey", "-noout"], capture_output=True, check=True, timeout=30
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"],
        input=pub,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    return "sha256:" + hashlib.sha256(der).hexdigest()


def test_create_list_use_and_delete(server: ServerProcess) -> None:
    token = pinnace(server, "create", "--ttl", "2h", "--description", "integration").stdout.strip()
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token)
    token_id = token.split(".")[0]
    listed = pinnace(server, "list").stdout.splitlines()
    assert listed[0].split()[:4] == ["TOKEN", "TTL", "EXPIRES", "USAGES"]
    row = next(line.split() for line in listed if line.startswith(token))
    assert row[1] in ("1h", "2h") and row[3] == "authentication,signing" and row[4] == "integration"
    assert row[5] == "system:bootstrappers:kubeadm:default-node-token"

    result = whoami(server, token)
    assert result.returncode == 0, describe(result)
    user = json.loads(result.stdout)["status"]["userInfo"]
    assert user["username"] == f"system:bootstrap:{token_id}"
    assert "system:bootstrappers:kubeadm:default-node-token" in user["groups"]

    assert pinnace(server, "delete", token_id).stdout.strip() == f'bootstrap token "{token_id}" deleted'
    assert not any(line.startswith(token) for line in pinnace(server, "list").stdout.splitlines())
    refused = whoami(server, token)
    assert refused.returncode != 0 and "Unauthorized" in refused.stderr
    missing = pinnace(server, "delete", token_id, check=False)
    assert missing.returncode == 1 and f'bootstrap token "{token_id}" not found' in missing.stderr


def test_join_command_pins_the_ca(server: ServerProcess) -> None:
    line = pinnace(server, "create", "--print-join-command").stdout.strip()
    match = re.fullmatch(
        r"kubeadm join (\S+) --token ([a-z0-9]{6}\.[a-z0-9]{16}) --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})",
        line,
    )
    assert match is not None, line
    assert match.group(1) == server.url.removeprefix("https://")
    assert match.group(3) == openssl_spki_hash(str(server.ca))
    pinnace(server, "delete", match.group(2))


def test_bad_input_is_an_error_not_a_traceback(server: ServerProcess) -> None:
    result = pinnace(server, "create", "--groups", "system:masters", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert 'group "system:masters" is invalid' in result.stderr
    result = pinnace(server, "create", "not-a-token", check=False)
    assert result.returncode == 1 and "was not of the form" in result.stderr
