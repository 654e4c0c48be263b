#!/usr/bin/env python3
"""pinnace-bootstrap: run the steps of /etc/pinnace/bootstrap.json, reporting each to the Machine.

Runs on the node (cloud-init's runcmd), so it is standalone: python3 >= 3.10 and its standard
library only (cloud-init is python3, so every image has it). `render` embeds this very file.

    pinnace-bootstrap            run every step under `bash -euo pipefail`, log to
                                 /var/log/pinnace/<step>.log, PATCH the Machine's
                                 status.bootstrap after each, stop at the first failure,
                                 then write the success marker
    pinnace-bootstrap metadata   (a step) ask the instance metadata service who we are; write
                                 /etc/pinnace/instance.env, add --provider-id and
                                 --hostname-override to the kubelet and hostnameOverride to kube-proxy
"""

from __future__ import annotations

import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import time
import urllib.request
from typing import Any

CONFIG = "/etc/pinnace/bootstrap.json"
KUBECONFIG = "/etc/kubernetes/bootstrap-kubelet.conf"
CA = "/etc/kubernetes/pki/ca.crt"
EXTRA_ARGS = "/etc/default/kubelet"
KUBE_PROXY_CONFIG = "/var/lib/kube-proxy/config.conf"
MARKER = "/var/lib/pinnace/bootstrap-complete"
INSTANCE_ENV = "/etc/pinnace/instance.env"
LOCAL_METADATA = "/run/pinnace/metadata.json"
LOG_DIR = "/var/log/pinnace"
STATUS_PATH = "/apis/infra.pinnace.dev/v1alpha1/machines/{name}/status"
TAIL_LINES, TAIL_BYTES = 20, 2048
STEP_TIMEOUT = 1800


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def log_tail(data: bytes) -> str:
    """The last lines of a step's output, as the Machine's status keeps them."""
    lines = data.decode(errors="replace").rstrip("\n").splitlines()[-TAIL_LINES:]
    return "\n".join(lines).encode()[-TAIL_BYTES:].decode(errors="ignore")


def _token() -> str:
    with open(KUBECONFIG, encoding="utf-8") as f:
        match = re.search(r"^\s*token:\s*['\"]?([a-z0-9]{6}\.[a-z0-9]{16})", f.read(), re.M)
    return match.group(1) if match else ""


def report(config: dict[str, Any], bootstrap: dict[str, Any]) -> None:
    """JSON merge patch of the whole status.bootstrap; a report that fails does not stop the steps."""
    machine = config.get("machine") or {}
    if not machine.get("name"):
        return
    url = config["server"].rstrip("/") + STATUS_PATH.format(name=machine["name"])
    body = json.dumps({"status": {"bootstrap": bootstrap}}).encode()
    headers = {"Content-Type": "application/merge-patch+json", "Authorization": "Bearer " + _token()}
    context = ssl.create_default_context(cafile=CA)
    for attempt in range(5):
        try:
            request = urllib.request.Request(url, data=body, headers=headers, method="PATCH")
            with urllib.request.urlopen(request, timeout=10, context=context):
                return
        except OSError as exc:
            print(f"pinnace-bootstrap: reporting to {url}: {exc}", file=sys.stderr)
            time.sleep(2**attempt)


def run_step(step: dict[str, Any]) -> tuple[bool, bytes]:
    os.makedirs(LOG_DIR, exist_ok=True)
    path = os.path.join(LOG_DIR, step["name"] + ".log")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", NEEDRESTART_MODE="a")
    with open(path, "wb") as out:
        try:
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", step["script"], step["name"]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=STEP_TIMEOUT,
                check=False,
            )
            ok = proc.returncode == 0
            if not ok:
                out.write(f"step {step['name']} failed: exit status {proc.returncode}\n".encode())
        except subprocess.TimeoutExpired:
            ok = False
            out.write(f"step {step['name']} timed out after {STEP_TIMEOUT}s\n".encode())
    with open(path, "rb") as f:
        return ok, f.read()


def run_all(config: dict[str, Any]) -> int:
    if os.path.exists(MARKER):
        return 0
    steps: list[dict[str, Any]] = []
    # failedStep and completed appear once true (as the simulated node agent reports them).
    state: dict[str, Any] = {"steps": steps}
    for step in config["steps"]:
        entry = {"name": step["name"], "state": "Running", "startedAt": now(), "logTail": ""}
        steps.append(entry)
        report(config, state)
        print(f"pinnace-bootstrap: {step['name']}: {step.get('description', '')}", flush=True)
        ok, output = run_step(step)
        entry.update(state="Succeeded" if ok else "Failed", finishedAt=now(), logTail=log_tail(output))
        if not ok:
            state["failedStep"] = step["name"]
            report(config, state)
            print(f"pinnace-bootstrap: step {step['name']} failed:\n{entry['logTail']}", file=sys.stderr)
            return 1
        report(config, state)
    os.makedirs(os.path.dirname(MARKER), exist_ok=True)
    with open(MARKER, "w", encoding="utf-8") as f:
        f.write(now() + "\n")
    state["completed"] = True
    report(config, state)
    return 0


def _get(url: str, headers: dict[str, str], method: str = "GET") -> str:
    last: Exception | None = None
    for attempt in range(8):
        try:
            request = urllib.request.Request(url, headers=headers, method=method)
            with urllib.request.urlopen(request, timeout=5) as response:
                return str(response.read().decode().strip())
        except OSError as exc:
            last = exc
            time.sleep(min(2**attempt, 10))
    raise RuntimeError(f"instance metadata: {url}: {last}")


def instance(kind: str) -> dict[str, str]:
    """instance_id, zone and region from the metadata service named by `kind`."""
    if kind == "aws":
        base = "http://169.254.169.254/latest"
        token = _get(base + "/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "300"}, "PUT")
        h = {"X-aws-ec2-metadata-token": token}
        return {
            "instance_id": _get(base + "/meta-data/instance-id", h),
            "zone": _get(base + "/meta-data/placement/availability-zone", h),
            "region": _get(base + "/meta-data/placement/region", h),
        }
    if kind == "gce":
        # Nodes on GCE are named after their instance (cloud-provider-gcp's providerID has the name).
        base, h = "http://metadata.google.internal/computeMetadata/v1/instance", {"Metadata-Flavor": "Google"}
        zone = _get(base + "/zone", h).rsplit("/", 1)[-1]
        return {"instance_id": _get(base + "/name", h), "zone": zone, "region": zone.rsplit("-", 1)[0]}
    if kind == "openstack":
        doc = json.loads(_get("http://169.254.169.254/openstack/latest/meta_data.json", {}))
        return {"instance_id": doc["uuid"], "zone": doc.get("availability_zone", ""), "region": ""}
    if kind == "local":
        with open(LOCAL_METADATA, encoding="utf-8") as f:
            doc = json.load(f)
        iid = doc.get("instance-id") or doc.get("instance_id") or doc.get("instanceID")
        return {
            "instance_id": str(iid),
            "zone": str(doc.get("zone", "")),
            "region": str(doc.get("region", "")),
        }
    raise RuntimeError(f"unknown metadata service {kind!r}")


def with_identity(text: str, node_name: str, provider_id: str) -> str:
    """/etc/default/kubelet with --provider-id and --hostname-override set (once, even when re-run)."""
    out = []
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == "KUBELET_EXTRA_ARGS":
            words = shlex.split(value)
            args = shlex.split(words[0]) if len(words) == 1 else words
            args = [a for a in args if not a.startswith(("--provider-id=", "--hostname-override="))]
            args += [f"--provider-id={provider_id}", f"--hostname-override={node_name}"]
            out.append("KUBELET_EXTRA_ARGS=" + shlex.quote(" ".join(args)))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def metadata(config: dict[str, Any]) -> int:
    ident = instance(config["metadata"])
    if not ident["instance_id"]:
        raise RuntimeError("instance metadata: no instance id")
    node_name = ident["instance_id"].lower()
    provider_id = config["providerIDTemplate"].format(**ident)
    values = {
        "PINNACE_INSTANCE_ID": ident["instance_id"],
        "PINNACE_ZONE": ident["zone"],
        "PINNACE_REGION": ident["region"],
        "PINNACE_NODE_NAME": node_name,
        "PINNACE_PROVIDER_ID": provider_id,
    }
    os.makedirs(os.path.dirname(INSTANCE_ENV), exist_ok=True)
    with open(INSTANCE_ENV, "w", encoding="utf-8") as f:
        f.writelines(f"{k}={shlex.quote(v)}\n" for k, v in values.items())
    with open(EXTRA_ARGS, encoding="utf-8") as f:
        text = f.read()
    with open(EXTRA_ARGS, "w", encoding="utf-8") as f:
        f.write(with_identity(text, node_name, provider_id))
    with open(KUBE_PROXY_CONFIG, encoding="utf-8") as f:
        lines = [ln for ln in f.read().splitlines() if not ln.startswith("hostnameOverride:")]
    with open(KUBE_PROXY_CONFIG, "w", encoding="utf-8") as f:
        f.write("\n".join([*lines, f"hostnameOverride: {json.dumps(node_name)}"]) + "\n")
    print(f"node {node_name}, providerID {provider_id}")
    return 0


def main(argv: list[str]) -> int:
    with open(CONFIG, encoding="utf-8") as f:
        config = json.load(f)
    if argv[1:] == ["metadata"]:
        return metadata(config)
    if argv[1:]:
        print(f"usage: {argv[0]} [metadata]", file=sys.stderr)
        return 2
    return run_all(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
