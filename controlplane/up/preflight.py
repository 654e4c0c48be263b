"""Checks `pinnace up` makes before it starts anything, and the words for what goes wrong: each
usual failure (port in use, no credentials, unknown region, a quota, a data directory from
another version) becomes one `PreflightError` whose message says what to do, never a traceback.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from providers.errors import AuthFailure, CloudError, InvalidConfiguration, QuotaExceeded, Transient

__all__ = [
    "FORMAT_VERSION",
    "PreflightError",
    "check_data_dir",
    "check_port",
    "check_region",
    "explain_cloud_error",
    "port_holder",
    "quota_hint",
    "write_version",
]

# The layout of a data directory (state.db, pki/, cloud/, nodes/); bumped when a newer pinnace
# lays it out so that an older one would misread it.
FORMAT_VERSION = 1
VERSION_FILE = "VERSION"


class PreflightError(Exception):
    """A failure the user can fix; `str()` is the whole message."""


def check_data_dir(data_dir: Path) -> None:
    """Refuse a data directory written in a format this pinnace does not read."""
    path = data_dir / VERSION_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return  # a new directory, or one `pinnace server` made before VERSION existed (format 1)
    except OSError as exc:
        raise PreflightError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        version = int(text)
    except ValueError:
        version = -1
    if version == FORMAT_VERSION:
        return
    what = f"format {version}" if version > FORMAT_VERSION else f"an unknown format ({text[:40]!r})"
    raise PreflightError(
        f"the data directory {data_dir} holds {what}; this pinnace reads format {FORMAT_VERSION}.\n"
        f"  Run the pinnace that created it, or start a separate cluster with --data-dir <other dir>\n"
        f"  (or move {data_dir} aside: it holds that cluster's CA, state and cloud config)."
    )


def write_version(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / VERSION_FILE
    if not path.exists():
        path.write_text(f"{FORMAT_VERSION}\n")


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN.
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_holder(port: int, *, proc: Path = Path("/proc")) -> Holder | None:
    """The process listening on `port`, when /proc shows it (Linux, and our own user's processes)."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    raw = (entry / "cmdline").read_bytes()
                    command = " ".join(p.decode(errors="replace") for p in raw.split(b"\0") if p)
                    return Holder(int(entry.name), command or "?")
        except OSError:
            continue
    return None


def check_port(host: str, port: int) -> None:
    """Fail early, and say who holds the port, rather than after the CA and state are made."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EACCES:
                raise PreflightError(
                    f"not allowed to listen on {host}:{port} (ports below 1024 need privileges); "
                    "choose another with --port"
                ) from exc
            if exc.errno != errno.EADDRINUSE:
                raise PreflightError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
            holder = port_holder(port)
            who = f" by pid {holder.pid} ({holder.command[:120]})" if holder else ""
            raise PreflightError(
                f"port {port} on {host} is already in use{who}.\n"
                f"  Stop that process, or choose another port with --port (e.g. --port {port + 1}).\n"
                "  If it is another `pinnace up` on the same data directory, that cluster is already running."
            ) from exc


def check_region(region: str, known: Iterable[str]) -> None:
    regions = sorted(set(known))
    if region in regions:
        return
    close = [r for r in regions if r.split("-")[0] == region.split("-", maxsplit=1)[0]][:8] or regions[:8]
    raise PreflightError(
        f"unknown AWS region {region!r}. Pass one with --region (or set AWS_REGION), e.g. "
        f"{', '.join(close)}; `aws ec2 describe-regions` lists those enabled for the account."
    )


# Error code -> (quota name in Service Quotas, service code, quota code).
_QUOTAS: dict[str, tuple[str, str, str]] = {
    "VcpuLimitExceeded": (
        "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances (vCPUs)",
        "ec2",
        "L-1216C47A",
    ),
    "InstanceLimitExceeded": (
        "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances (vCPUs)",
        "ec2",
        "L-1216C47A",
    ),
    "AddressLimitExceeded": ("EC2-VPC Elastic IPs", "ec2", "L-0263D0A3"),
    "VpcLimitExceeded": ("VPCs per Region", "vpc", "L-F678F1CE"),
    "SecurityGroupLimitExceeded": ("VPC security groups per Region", "vpc", "L-E79EC296"),
    "RulesPerSecurityGroupLimitExceeded": (
        "Inbound or outbound rules per security group",
        "vpc",
        "L-0EA8095F",
    ),
    "RouteLimitExceeded": ("Routes per route table", "vpc", "L-93826ACB"),
    "TooManyLoadBalancers": ("Network Load Balancers per Region", "elasticloadbalancing", "L-69A177A2"),
    "TooManyTargetGroups": ("Target Groups per Region", "elasticloadbalancing", "L-B22855CB"),
}


def quota_hint(code: str, message: str = "") -> str | None:
    """How to raise the quota an error code (or a message naming one) hit; None if none did."""
    for known, (name, service, quota) in _QUOTAS.items():
        if code == known or (not code and known in message):
            return (
                f"AWS quota exceeded ({known}): {name!r}. Request more in the Service Quotas console "
                f"(https://console.aws.amazon.com/servicequotas/) or with\n"
                f"  aws service-quotas request-service-quota-increase --service-code {service} "
                f"--quota-code {quota} --desired-value <N>\n"
                "  or ask for fewer or smaller nodes (--nodes, a smaller instance type)."
            )
    return None


def explain_cloud_error(exc: CloudError, *, provider: str = "aws", region: str = "") -> str:
    """One actionable paragraph for an error from `providers.errors`."""
    code = exc.code
    if isinstance(exc, AuthFailure):
        if code in ("NoCredentialsError", "PartialCredentialsError"):
            return (
                "no AWS credentials found. Set them the standard way, e.g.\n"
                "  export AWS_PROFILE=<profile from ~/.aws/config>   (after `aws configure` or `aws sso login`)\n"
                "  or export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... (and AWS_SESSION_TOKEN if temporary)"
            )
        if code in ("ExpiredToken", "ExpiredTokenException"):
            return f"the AWS credentials have expired ({exc.message}); refresh them (e.g. `aws sso login`)."
        return (
            f"AWS refused the credentials ({exc}). Check AWS_PROFILE / AWS_ACCESS_KEY_ID, and that "
            "the identity may use EC2 and Elastic Load Balancing in this account "
            "(`aws sts get-caller-identity` shows who you are)."
        )
    if isinstance(exc, QuotaExceeded):
        return quota_hint(code, exc.message) or f"a cloud quota was exceeded: {exc}"
    if isinstance(exc, InvalidConfiguration) and code == "NoRegion":
        return "no AWS region: pass --region (or set AWS_REGION)."
    if isinstance(exc, Transient) and code in ("EndpointConnectionError", "ConnectTimeoutError"):
        where = f" region {region!r}" if region else ""
        return (
            f"cannot reach the {provider} API for{where}: {exc.message}\n"
            "  Check the region (--region) and the network; with --aws-endpoint-url, that the endpoint is up."
        )
    return f"{provider}: {exc}"
