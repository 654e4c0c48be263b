"""`pinnace up` and `pinnace down`: the flags, the checks before anything starts, and the run.

`up` is `pinnace server` (the same composition, given through `ServerHooks` by the command line
so that it exists once) plus the provisioning operator, the simulated fleet and a progress view.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from controlplane.up import preflight
from controlplane.up.preflight import PreflightError
from controlplane.up.record import DEFAULT_CLUSTER_NAME, ClusterRecord, load_record, save_record

__all__ = ["ServerHooks", "add_parsers", "run"]


@dataclass(frozen=True)
class ServerHooks:
    """`pinnace server`'s pieces: its parser (for its defaults), its config and its composition."""

    parse: Callable[[list[str]], argparse.Namespace]
    config: Callable[[argparse.Namespace], Any]
    serve: Callable[..., Awaitable[None]]


def _duration(text: str) -> float:
    from controlplane.tokens_cli import TokenError, parse_duration

    try:
        return float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text).total_seconds()
    except TokenError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_parsers(sub: Any, default_data_dir: Path) -> None:
    up = sub.add_parser(
        "up",
        help="bring a whole cluster up: control plane, cloud, node pool; waits for Ready nodes",
        description="Start the control plane with its cloud-controller-manager and node provisioning, "
        "create a NodePool on a new cluster (resume an existing one), and wait until its nodes are Ready.",
    )
    up.add_argument(
        "--data-dir", type=Path, default=default_data_dir, help="the cluster's state, PKI, kubeconfig"
    )
    up.add_argument(
        "--provider",
        choices=("local", "aws"),
        default=None,
        help="the cloud (default local, or the one the data directory's cluster uses)",
    )
    up.add_argument("--region", default="", help="AWS region (default: the cloud config's, AWS_REGION)")
    up.add_argument(
        "--aws-endpoint-url",
        default="",
        help="an AWS-compatible API such as moto's server (nodes are then simulated)",
    )
    up.add_argument("--cloud-config", type=Path, default=None, help="a cloud config (YAML) to start from")
    up.add_argument(
        "--cluster-name",
        default="",
        help=f"the cluster id tagged on cloud resources (default {DEFAULT_CLUSTER_NAME})",
    )
    up.add_argument(
        "--nodes",
        type=int,
        default=3,
        help="size of the default NodePool when the cluster has none (default 3)",
    )
    up.add_argument("--instance-type", default="", help="the default NodePool's instance type")
    up.add_argument("--image", default="", help="the default NodePool's image (an AMI on AWS)")
    up.add_argument("--port", type=int, default=6443, help="the API server's port (default 6443)")
    up.add_argument("--bind-address", default="127.0.0.1")
    up.add_argument(
        "--advertise-address",
        default="",
        help="the address nodes reach the API server at (added to its certificate; default the bind address)",
    )
    up.add_argument(
        "--wait-timeout", type=_duration, default=600.0, help="how long to wait for Ready nodes (default 10m)"
    )
    up.add_argument(
        "--no-wait", action="store_true", help="do not wait for the nodes; print how to connect at once"
    )
    up.add_argument(
        "--keep-running-on-timeout",
        action="store_true",
        help="after --wait-timeout, report the stuck machines but keep running (default: exit 1)",
    )
    up.add_argument(
        "--log-file", default="", help="where logs go (default <data-dir>/pinnace.log; - for stderr)"
    )
    up.add_argument(
        "--simulate-bootstrap-failure",
        action="append",
        default=[],
        metavar="STEP[@MACHINE-GLOB][:COUNT]",
        help="simulated clouds only: make bootstrap step STEP fail on the first COUNT (default 1) "
        "machines matching the glob, to see a failure reported and the machine replaced; repeatable",
    )
    up.add_argument("--progress-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    up.add_argument("--fleet-poll-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    # Tests and benchmarks: how often the operator looks at Running machines again (its default 60s).
    up.add_argument("--provisioner-resync-interval", type=float, default=None, help=argparse.SUPPRESS)

    down = sub.add_parser(
        "down",
        help="delete a cluster's node pools and every cloud resource tagged for it",
        description="Delete every NodePool (draining the nodes) and every cloud resource tagged for the "
        "cluster, then verify nothing is left. The data directory is kept.",
    )
    down.add_argument("--data-dir", type=Path, default=default_data_dir)
    down.add_argument(
        "--force", action="store_true", help="when the API server is not running, skip draining"
    )
    down.add_argument(
        "--timeout", type=_duration, default=600.0, help="how long to wait for deletions (default 10m)"
    )
    down.add_argument(
        "--log-file", default="", help="where logs go (default <data-dir>/pinnace.log; - for stderr)"
    )


def _log_to(data_dir: Path, target: str) -> None:
    if target == "-":
        return
    path = Path(target) if target else data_dir / "pinnace.log"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    root = logging.getLogger()
    formatter = root.handlers[0].formatter if root.handlers else None
    handler = logging.FileHandler(path)
    if formatter is not None:
        handler.setFormatter(formatter)
    root.handlers[:] = [handler]


def run(args: argparse.Namespace, hooks: ServerHooks) -> int:
    data_dir: Path = args.data_dir.expanduser().resolve()
    try:
        preflight.check_data_dir(data_dir)
        _log_to(data_dir, args.log_file)
        if args.command == "down":
            return _down(args, data_dir)
        return _up(args, data_dir, hooks)
    except PreflightError as exc:
        print(f"pinnace {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _resolve_record(args: argparse.Namespace, data_dir: Path) -> ClusterRecord:
    stored = load_record(data_dir)
    provider = args.provider or (stored.provider if stored else "local")
    if stored is not None and stored.provider != provider:
        raise PreflightError(
            f"the cluster in {data_dir} runs on the {stored.provider} cloud, not {provider}: "
            f"run `pinnace down --data-dir {data_dir}` first, or use another --data-dir"
        )
    cluster_name = args.cluster_name or (stored.cluster_name if stored else DEFAULT_CLUSTER_NAME)
    if stored is not None and stored.cluster_name != cluster_name:
        raise PreflightError(
            f"the cluster in {data_dir} is named {stored.cluster_name!r}, not {cluster_name!r} "
            "(its cloud resources are tagged with that name); drop --cluster-name or use another --data-dir"
        )
    if provider != "aws" and (args.region or args.aws_endpoint_url):
        raise PreflightError("--region and --aws-endpoint-url go with --provider aws")
    record = stored or ClusterRecord(provider=provider, cluster_name=cluster_name)
    return replace(
        record,
        region=args.region or record.region,
        aws_endpoint_url=args.aws_endpoint_url or record.aws_endpoint_url,
    )


def _check_boot_faults(faults: list[str], *, simulated: bool) -> None:
    from node_bootstrap.cloudinit.steps import STEPS
    from node_bootstrap.fleet import BootFault

    if faults and not simulated:
        raise PreflightError(
            "--simulate-bootstrap-failure needs simulated nodes (the local cloud or --aws-endpoint-url)"
        )
    for text in faults:
        try:
            fault = BootFault.parse(text)
        except ValueError as exc:
            raise PreflightError(str(exc)) from exc
        if fault.step not in STEPS:
            raise PreflightError(
                f"--simulate-bootstrap-failure: no bootstrap step {fault.step!r}; the steps are {', '.join(STEPS)}"
            )


def _up(args: argparse.Namespace, data_dir: Path, hooks: ServerHooks) -> int:
    from controlplane.up.cloud import prepare_cloud_config
    from controlplane.up.compose import Upper, UpSettings

    if args.nodes < 0:
        raise PreflightError("--nodes must be 0 or more")
    record = _resolve_record(args, data_dir)
    _check_boot_faults(
        args.simulate_bootstrap_failure, simulated=record.provider == "local" or bool(record.aws_endpoint_url)
    )
    preflight.check_port(args.bind_address, args.port)
    cloud = asyncio.run(prepare_cloud_config(record, data_dir, args.cloud_config))
    cloud_config = cloud.config_path
    preflight.write_version(data_dir)
    save_record(data_dir, record)
    server_argv = [
        "server",
        "--data-dir",
        str(data_dir),
        "--bind-address",
        args.bind_address,
        "--secure-port",
        str(args.port),
        "--cloud-provider",
        record.provider,
        "--cloud-config",
        str(cloud_config),
    ]
    if args.advertise_address:
        server_argv += ["--tls-san", args.advertise_address]
    server_args = hooks.parse(server_argv)
    config = hooks.config(server_args)
    if config is None:
        return 1
    advertise = f"https://{args.advertise_address}:{args.port}" if args.advertise_address else ""
    settings = UpSettings(
        data_dir=data_dir,
        record=record,
        cloud_config=cloud_config,
        nodes=args.nodes,
        zones=cloud.zones,
        instance_type=args.instance_type,
        image=args.image,
        wait=not args.no_wait,
        wait_timeout=args.wait_timeout,
        keep_running_on_timeout=args.keep_running_on_timeout,
        progress_interval=args.progress_interval,
        fleet_poll_interval=args.fleet_poll_interval,
        boot_faults=tuple(args.simulate_bootstrap_failure),
        provisioner_resync_interval=args.provisioner_resync_interval,
        advertise_url=advertise,
        live=sys.stdout.isatty(),
    )
    upper = Upper(settings)
    print(
        f"Starting cluster {record.cluster_name!r} ({record.provider} cloud"
        + (f", {record.aws_endpoint_url}" if record.aws_endpoint_url else "")
        + f") from {data_dir}; logs in {args.log_file or data_dir / 'pinnace.log'}",
        flush=True,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await hooks.serve(config, server_args, stop=stop, attach=upper.attach, announce=False)

    try:
        asyncio.run(main())
    except Exception as exc:
        return _report(exc, record)
    if upper.exit_code == 0:
        print("Stopped.", flush=True)
    return upper.exit_code


def _report(error: Exception, record: ClusterRecord) -> int:
    """The known failures as their actionable message; anything else is a bug: re-raised."""
    from providers.errors import CloudError

    for exc in _leaves(error):
        if isinstance(exc, PreflightError):
            print(f"pinnace up: {exc}", file=sys.stderr)
        elif isinstance(exc, CloudError):
            print(
                f"pinnace up: {preflight.explain_cloud_error(exc, provider=record.provider, region=record.region)}",
                file=sys.stderr,
            )
        elif isinstance(exc, OSError) and exc.errno == 98:  # lost the port between check and bind
            print(f"pinnace up: {exc.strerror}; choose another --port", file=sys.stderr)
        else:
            raise error
    return 1


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _down(args: argparse.Namespace, data_dir: Path) -> int:
    from controlplane.up.down import down
    from providers.errors import CloudError

    record = load_record(data_dir)
    if record is None:
        raise PreflightError(
            f"no cluster made by `pinnace up` in {data_dir} (no {data_dir}/cloud/up.json); nothing to do"
        )
    try:
        return asyncio.run(down(data_dir, record, force=args.force, timeout=args.timeout, out=sys.stdout))
    except CloudError as exc:
        raise PreflightError(
            preflight.explain_cloud_error(exc, provider=record.provider, region=record.region)
        ) from exc
