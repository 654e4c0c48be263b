"""The `pinnace` command line: `pinnace server` runs the control plane on its embedded defaults."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from controlplane import event_loop, gc_policy

__all__ = ["main"]

# kube-apiserver's usual --service-account-issuer (kept here: the CLI imports the server lazily).
DEFAULT_SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_DATA_DIR = Path(os.environ.get("PINNACE_DATA_DIR", "~/.local/share/pinnace")).expanduser()


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    _skip = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._skip:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _configure_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    from ccm import cli as ccm_cli
    from controlplane.controllers.runtime.leaderflags import add_leader_election_flags

    parser = argparse.ArgumentParser(
        prog="pinnace", description="A compact Kubernetes-compatible control plane."
    )
    parser.add_argument("--log-format", choices=("json", "text"), default="json")
    parser.add_argument("--log-level", default="info")
    sub = parser.add_subparsers(dest="command", required=True)
    server = sub.add_parser("server", help="run the API server on an embedded SQLite store")
    server.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="state, PKI and kubeconfig (mode 0700)"
    )
    server.add_argument("--bind-address", default="127.0.0.1")
    server.add_argument("--secure-port", type=int, default=6443)
    server.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
    server.add_argument("--cluster-cidr", default="10.244.0.0/16")
    server.add_argument("--service-node-port-range", default="30000-32767")
    server.add_argument(
        "--tls-san", action="append", default=[], help="extra serving-certificate SAN (repeatable)"
    )
    server.add_argument("--storage", default="", help="storage URL (default sqlite:///<data-dir>/state.db)")
    server.add_argument("--sqlite-synchronous", choices=("FULL", "NORMAL"), default="FULL")
    server.add_argument(
        "--tls-backend",
        choices=("openssl", "stdlib"),
        default="openssl",
        help="TLS listener: openssl verifies client certificates after the handshake (a foreign one "
        "gets 401, as upstream); stdlib (Python's ssl) refuses it in the handshake",
    )
    server.add_argument("--token-auth-file", type=Path, default=None)
    server.add_argument(
        "--service-account-issuer",
        action="append",
        default=[],
        help="issuer of ServiceAccount tokens (repeatable: the first signs, all are accepted; "
        "default https://kubernetes.default.svc.cluster.local)",
    )
    server.add_argument(
        "--service-account-signing-key-file",
        type=Path,
        default=None,
        help="RSA key that signs ServiceAccount tokens (default <data-dir>/pki/sa.key, created on first start)",
    )
    server.add_argument(
        "--service-account-key-file",
        type=Path,
        action="append",
        default=[],
        help="PEM public keys that verify ServiceAccount tokens (repeatable; default the signing key's)",
    )
    server.add_argument(
        "--api-audiences", default="", help="comma-separated audiences of the API (default: the issuer)"
    )
    server.add_argument(
        "--service-account-max-token-expiration",
        default="0s",
        help="longest lifetime a TokenRequest gets (Go duration, 1h to 2^32 s; 0: no cap); "
        "longer requests are issued with this lifetime",
    )
    server.add_argument(
        "--service-account-extend-token-expiration",
        choices=("true", "false"),
        default="true",
        help="issue the kubelet's projected tokens (3607 s) for a year with a warnafter claim, as upstream",
    )
    server.add_argument(
        "--compaction-interval", type=float, default=60.0, help="seconds between compactions (0: off)"
    )
    server.add_argument(
        "--retain-revisions", type=int, default=1000, help="compaction keeps at least this many revisions"
    )
    server.add_argument(
        "--retain-seconds", type=float, default=300.0, help="compaction keeps at least this much history"
    )
    server.add_argument("--watch-bookmark-interval", type=float, default=60.0)
    server.add_argument("--max-requests-inflight", type=int, default=400)
    server.add_argument("--max-mutating-requests-inflight", type=int, default=200)
    server.add_argument("--default-not-ready-toleration-seconds", type=int, default=300)
    server.add_argument("--default-unreachable-toleration-seconds", type=int, default=300)
    server.add_argument(
        "--disable-admission-plugins",
        default="",
        help="comma-separated admission plugins to turn off (e.g. ServiceAccount, as upstream's "
        "integration test servers do when no controller manager makes `default` ServiceAccounts)",
    )
    server.add_argument(
        "--disable-scheduler", action="store_true", help="do not run the scheduler in process"
    )
    server.add_argument(
        "--audit-log-path", default="", help="write audit events here as JSON lines (-: stdout)"
    )
    server.add_argument("--audit-policy-file", type=Path, default=None, help="an audit.k8s.io/v1 Policy")
    server.add_argument("--audit-log-maxsize", type=int, default=0, help="rotate at this many MB (0: 100)")
    server.add_argument("--audit-log-maxbackup", type=int, default=0, help="rotated files kept (0: all)")
    server.add_argument(
        "--audit-log-maxage", type=int, default=0, help="days rotated files are kept (0: any)"
    )
    server.add_argument(
        "--disable-garbage-collector", action="store_true", help="same as --controllers=*,-garbage-collector"
    )
    _controller_flags(server)
    ccm_cli.add_server_flags(server)
    cm = sub.add_parser(
        "controller-manager", help="run the controllers alone, against an API server given by --kubeconfig"
    )
    cm.add_argument("--kubeconfig", type=Path, required=True)
    cm.add_argument("--cluster-cidr", default="10.244.0.0/16")
    cm.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
    cm.add_argument(
        "--service-account-private-key-file",
        type=Path,
        default=None,
        help="key that signs legacy ServiceAccount token Secrets (without it the serviceaccount-token controller idles)",
    )
    cm.add_argument(
        "--root-ca-file", type=Path, default=None, help="CA written into ServiceAccount token Secrets"
    )
    cm.add_argument(
        "--cluster-signing-cert-file",
        type=Path,
        default=None,
        help="CA certificate the CSR signer issues with",
    )
    cm.add_argument("--cluster-signing-key-file", type=Path, default=None, help="the key of that CA")
    _controller_flags(cm)
    add_leader_election_flags(cm, resource_name=None)
    kc = sub.add_parser(
        "kubeconfig", help="print a kubeconfig for a new client certificate signed by the cluster CA"
    )
    kc_sub = kc.add_subparsers(dest="kubeconfig_command", required=True)
    user = kc_sub.add_parser("user", help="as kubeadm's `kubeconfig user`: CN = --client-name, O = --org")
    user.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the server's data directory")
    user.add_argument("--client-name", required=True, help="the user, e.g. system:node:node-1")
    user.add_argument("--org", action="append", default=[], help="a group, e.g. system:nodes (repeatable)")
    user.add_argument("--validity-days", type=int, default=365)
    user.add_argument("--out", type=Path, default=None, help="write here (mode 0600) instead of stdout")
    from ccm.provisioning import cli as provisioner_cli
    from controlplane import tokens_cli
    from controlplane.scheduler import cli as scheduler_cli
    from controlplane.up import cli as up_cli
    from node_bootstrap.agent import cli as agent_cli

    tokens_cli.add_parser(sub, DEFAULT_DATA_DIR / "admin.kubeconfig")
    ccm_cli.add_parser(sub)
    provisioner_cli.add_parser(sub)
    scheduler_cli.add_parser(sub)
    agent_cli.add_parser(sub)
    up_cli.add_parsers(sub, DEFAULT_DATA_DIR)
    _bootstrap_parser(sub)
    return parser


def _bootstrap_parser(sub: Any) -> None:
    """`pinnace bootstrap render` (node_bootstrap.cloudinit.cli adds `bootstrap` and its commands)."""
    from node_bootstrap.cloudinit import cli as render_cli

    render_cli.add_parser(sub)


def _controller_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--controllers",
        default="*",
        help="controllers to run: '*' for all, 'name' to enable one, '-name' to disable one, '' for none",
    )
    parser.add_argument("--node-monitor-grace-period", type=float, default=40.0)
    parser.add_argument("--node-cidr-mask-size", type=int, default=24)
    parser.add_argument("--terminated-pod-gc-threshold", type=int, default=12500)
    parser.add_argument(
        "--cluster-signing-duration",
        default="8760h0m0s",
        help="max lifetime of certificates the CSR signer issues (Go duration, default one year)",
    )


def _controller_manager(client: Any, args: argparse.Namespace, *, leader: Any) -> Any:
    """The controller manager for the selected controllers (the garbage collector included)."""
    from controlplane.controllers import registry
    from controlplane.controllers.runtime import ControllerConfig, ControllerManager

    known = registry.all_controllers()
    spec = args.controllers
    if getattr(args, "disable_garbage_collector", False):
        spec += ",-garbage-collector"
    chosen = registry.select(spec, known)
    config = ControllerConfig(
        cluster_cidr=args.cluster_cidr,
        node_cidr_mask_size=args.node_cidr_mask_size,
        node_monitor_grace_period=args.node_monitor_grace_period,
        terminated_pod_gc_threshold=args.terminated_pod_gc_threshold,
        extra={
            "service_cluster_ip_range": args.service_cluster_ip_range,
            "service_account_private_key_file": getattr(args, "service_account_private_key_file", None),
            "root_ca_file": getattr(args, "root_ca_file", None),
            "cluster_signing_cert_file": getattr(args, "cluster_signing_cert_file", None),
            "cluster_signing_key_file": getattr(args, "cluster_signing_key_file", None),
            "cluster_signing_duration": _signing_seconds(args),
        },
    )
    return ControllerManager(
        client,
        [known[n] for n in chosen],
        config=config,
        leader_election=leader,
    )


def _signing_seconds(args: argparse.Namespace) -> float:
    from controlplane.tokens_cli import parse_duration

    return parse_duration(getattr(args, "cluster_signing_duration", "8760h")).total_seconds()


def _max_token_expiration(text: str) -> int:
    """--service-account-max-token-expiration in whole seconds, checked as kube-apiserver does."""
    from controlplane.tokens_cli import TokenError, parse_duration

    try:
        seconds = int(parse_duration(text).total_seconds())
    except TokenError as exc:
        raise SystemExit(f"invalid --service-account-max-token-expiration: {exc}") from None
    if seconds != 0 and not 3600 <= seconds <= 1 << 32:
        raise SystemExit(
            "service-account-max-token-expiration is out of range, must be between 1 hour and 2^32 seconds"
        )
    return seconds


def _admission_plugins(text: str) -> tuple[str, ...]:
    """--disable-admission-plugins, checked against the plugins the server has."""
    from controlplane.apiserver.admission import check_plugin_names

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    try:
        check_plugin_names(names)
    except ValueError as exc:
        raise SystemExit(f"invalid --disable-admission-plugins: {exc}") from None
    return names


def _stop_on_signals() -> asyncio.Event:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(
    config: Any,
    args: argparse.Namespace,
    *,
    stop: asyncio.Event | None = None,
    attach: Any = None,
    announce: bool = True,
) -> None:
    """The composition root of `pinnace server` (and of `pinnace up`, which `attach`es its
    operator, simulated fleet and progress view): the API server, then the in-process
    controllers, which talk to it over HTTPS like any other client (and elect a leader like any
    other copy). `attach(running, tg, stop)` adds tasks to the same TaskGroup; `stop` ends all."""
    from ccm.manager import run_in_process
    from controlplane.apiserver import server
    from controlplane.client import Client, load_kubeconfig
    from controlplane.controllers.runtime import LeaderElectionConfig
    from controlplane.scheduler import run_scheduler

    # Signals are handled from before the server starts: it serves (and /readyz answers) while
    # its last start-up writes are still in flight, and a SIGTERM then must stop it cleanly,
    # not kill it by the default action.
    stop = stop or _stop_on_signals()
    running = await server.start(config)
    if announce:
        print(f"Pinnace API server listening on {running.url}", flush=True)
        print(f"Admin kubeconfig: {config.kubeconfig_path}", flush=True)
        print(f"  export KUBECONFIG={config.kubeconfig_path}", flush=True)
    # Each component on its own identity and upstream's role for it, not the admin credential.
    client = Client(
        load_kubeconfig(config.controller_manager_kubeconfig_path),
        user_agent="pinnace-controller-manager/v1.33.0",
    )
    manager = _controller_manager(client, args, leader=LeaderElectionConfig())
    # Its own connection pool: a busy controller manager must not starve binding.
    scheduler_client = Client(
        load_kubeconfig(config.scheduler_kubeconfig_path), user_agent="pinnace-scheduler/v1.33.0"
    )
    gc_policy.freeze_startup()
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(running.run_controllers(stop))
            if manager.has_work:  # `--controllers=`: not even a candidate for the lease
                tg.create_task(manager.run(stop))
            tg.create_task(
                run_in_process(
                    config.cloud_controller_manager_kubeconfig_path,
                    stop,
                    cloud_provider=config.cloud_provider,
                    cloud_config=config.cloud_config,
                    cluster_cidr=config.cluster_cidr,
                    data_dir=config.data_dir,
                )
            )
            if not args.disable_scheduler:
                tg.create_task(run_scheduler(scheduler_client, stop, leader_election=True))
            if attach is not None:
                await attach(running, tg, stop)
            await stop.wait()
    finally:
        logging.getLogger("pinnace.server").info("shutting down")
        await client.close()
        await scheduler_client.close()
        await running.stop()
        logging.getLogger("pinnace.server").info("stopped")


def _server_config(args: argparse.Namespace) -> Any:
    """The ServerConfig for `pinnace server`'s flags (None, reported, when they are unusable); sets
    the in-process controller manager's key and CA files on `args`."""
    from controlplane.apiserver import server

    low, _, high = args.service_node_port_range.partition("-")
    config = server.ServerConfig(
        data_dir=args.data_dir.expanduser().resolve(),
        bind_address=args.bind_address,
        port=args.secure_port,
        service_cidr=args.service_cluster_ip_range,
        cluster_cidr=args.cluster_cidr,
        node_port_range=(int(low), int(high)),
        tls_sans=list(args.tls_san),
        storage_url=args.storage,
        synchronous=args.sqlite_synchronous,
        tls_backend=args.tls_backend,
        token_file=args.token_auth_file,
        service_account_issuers=list(args.service_account_issuer) or [DEFAULT_SERVICE_ACCOUNT_ISSUER],
        service_account_signing_key_file=args.service_account_signing_key_file,
        service_account_key_files=list(args.service_account_key_file),
        api_audiences=[a for a in args.api_audiences.split(",") if a],
        service_account_max_token_expiration=_max_token_expiration(args.service_account_max_token_expiration),
        service_account_extend_token_expiration=args.service_account_extend_token_expiration == "true",
        compaction_interval=args.compaction_interval,
        retain_revisions=args.retain_revisions,
        retain_seconds=args.retain_seconds,
        bookmark_interval=args.watch_bookmark_interval,
        max_requests_inflight=args.max_requests_inflight,
        max_mutating_requests_inflight=args.max_mutating_requests_inflight,
        default_not_ready_toleration_seconds=args.default_not_ready_toleration_seconds,
        default_unreachable_toleration_seconds=args.default_unreachable_toleration_seconds,
        disable_admission_plugins=_admission_plugins(getattr(args, "disable_admission_plugins", "")),
        cloud_provider=args.cloud_provider,
        cloud_config=args.cloud_config,
        audit_log_path=args.audit_log_path,
        audit_policy_file=args.audit_policy_file,
        audit_log_maxsize=args.audit_log_maxsize,
        audit_log_maxbackup=args.audit_log_maxbackup,
        audit_log_maxage=args.audit_log_maxage,
    )
    # The in-process controller manager signs legacy token Secrets with the server's key.
    args.service_account_private_key_file = (
        config.service_account_signing_key_file or config.data_dir / "pki" / "sa.key"
    )
    args.root_ca_file = config.data_dir / "pki" / "ca.crt"
    # The in-process CSR signer issues with the cluster CA (kubeadm passes the same files).
    args.cluster_signing_cert_file = config.data_dir / "pki" / "ca.crt"
    args.cluster_signing_key_file = config.data_dir / "pki" / "ca.key"
    if config.audit_log_path and config.audit_policy_file is not None:
        from controlplane.apiserver import audit_policy

        try:
            audit_policy.load_policy_file(config.audit_policy_file)
        except (OSError, audit_policy.PolicyError) as exc:
            print(f"error: failed to load audit policy file: {exc}", file=sys.stderr)
            return None
    return config


# Commands that run until stopped: the collector settings of `gc_policy`, the loop of `event_loop`.
_LONG_RUNNING = frozenset(
    {"server", "up", "controller-manager", "scheduler", "node-agent", "ccm", "provisioner"}
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.log_format, args.log_level)
    if args.command in _LONG_RUNNING:
        gc_policy.tune()
        try:
            event_loop.install()
        except ValueError as exc:
            print(f"pinnace: {exc}", file=sys.stderr)
            return 2
    if args.command == "server":
        config = _server_config(args)
        if config is None:
            return 1
        try:
            asyncio.run(_serve(config, args))
        except KeyboardInterrupt:
            return 130
        return 0
    if args.command == "kubeconfig":
        return _user_kubeconfig(args)
    if args.command in ("up", "down"):
        from controlplane.up import cli as up_cli

        hooks = up_cli.ServerHooks(
            parse=lambda argv: _parser().parse_args(argv), config=_server_config, serve=_serve
        )
        return up_cli.run(args, hooks)
    if args.command == "bootstrap":
        from node_bootstrap.cloudinit import cli as render_cli

        return int(render_cli.run(args))
    if args.command == "ccm":
        from ccm import cli as ccm_cli

        return ccm_cli.run(args)
    if args.command == "provisioner":
        from ccm.provisioning import cli as provisioner_cli

        return provisioner_cli.run(args)
    if args.command == "scheduler":
        from controlplane.scheduler import cli as scheduler_cli

        return scheduler_cli.run(args)
    if args.command == "token":
        from controlplane import tokens_cli

        return tokens_cli.run(args)
    if args.command == "node-agent":
        from node_bootstrap.agent import cli as agent_cli

        return agent_cli.run(args)
    if args.command == "controller-manager":
        try:
            asyncio.run(_run_controller_manager(args))
        except KeyboardInterrupt:
            return 130
        return 0
    return 2


def _user_kubeconfig(args: argparse.Namespace) -> int:
    from controlplane.apiserver import kubeconfig, pki

    data_dir = args.data_dir.expanduser().resolve()
    bundle = pki.PKI.at(data_dir / "pki")
    admin = data_dir / "admin.kubeconfig"
    if not bundle.ca_key.exists() or not admin.exists():
        print(
            f"pinnace: no cluster CA under {data_dir} (run `pinnace server --data-dir {data_dir}` once)",
            file=sys.stderr,
        )
        return 1
    text = kubeconfig.user_kubeconfig(bundle, admin, args.client_name, args.org, days=args.validity_days)
    if args.out is None:
        sys.stdout.write(text)
    else:
        pki.write_private_file(args.out, text.encode())
    return 0


async def _run_controller_manager(args: argparse.Namespace) -> None:
    from controlplane.client import Client, load_kubeconfig
    from controlplane.controllers.runtime import LeaderElectionConfig

    stop = _stop_on_signals()
    leader = LeaderElectionConfig(
        enabled=args.leader_elect,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )
    async with Client(
        load_kubeconfig(args.kubeconfig), user_agent="pinnace-controller-manager/v1.33.0"
    ) as client:
        await _controller_manager(client, args, leader=leader).run(stop)


if __name__ == "__main__":
    sys.exit(main())
