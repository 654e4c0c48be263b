"""What `pinnace up` shows while the nodes come up: one row per Machine (name, phase, instance,
node, current bootstrap step), a rich Live table on a terminal and one line per change
otherwise (what logs and tests read). The rows are computed by pure functions from the
Machines, NodePools and Nodes, so rendering is tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from ccm.provisioning.api import LABEL_NODE_POOL, MachinePhase, StepState
from controlplane.up.preflight import quota_hint

__all__ = [
    "LiveView",
    "MachineRow",
    "PlainView",
    "PoolProgress",
    "View",
    "all_ready",
    "change_lines",
    "current_step",
    "machine_rows",
    "pool_progress",
    "render_table",
    "renewed_since",
    "stuck_report",
    "summary_line",
]


@dataclass(frozen=True)
class MachineRow:
    name: str
    pool: str
    phase: str
    instance: str
    node: str
    node_ready: bool
    step: str
    problem: str  # why it is not progressing, when it says ("" otherwise)


@dataclass(frozen=True)
class PoolProgress:
    name: str
    desired: int
    ready: int

    @property
    def done(self) -> bool:
        return self.ready >= self.desired


def node_is_ready(node: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in node.get("status", {}).get("conditions", []) or []
    )


def current_step(bootstrap: Mapping[str, Any] | None) -> str:
    """The step a node is at: the failed one, the running one, `done` after the success marker."""
    if not bootstrap:
        return ""
    steps = [s for s in bootstrap.get("steps", []) or [] if isinstance(s, Mapping)]
    failed = bootstrap.get("failedStep")
    if failed:
        return f"{failed} (failed)"
    if bootstrap.get("completed"):
        return "done"
    for step in reversed(steps):
        if step.get("state") == StepState.RUNNING:
            return str(step.get("name", ""))
    if steps:
        return f"{steps[-1].get('name', '')} (ok)"
    return ""


def _log_tail(bootstrap: Mapping[str, Any], step: str) -> str:
    for entry in bootstrap.get("steps", []) or []:
        if isinstance(entry, Mapping) and entry.get("name") == step:
            return str(entry.get("logTail", "") or "")
    return ""


def _problem(status: Mapping[str, Any]) -> str:
    bootstrap = status.get("bootstrap") or {}
    failed = bootstrap.get("failedStep")
    if failed:
        tail = _log_tail(bootstrap, str(failed)).strip().splitlines()
        return f"step {failed} failed" + (f": {tail[-1]}" if tail else "")
    message = str(status.get("failureMessage", "") or "")
    reason = str(status.get("failureReason", "") or "")
    if message or reason:
        return f"{reason}: {message}" if reason and message else message or reason
    for cond in status.get("conditions", []) or []:
        if cond.get("status") == "False" and cond.get("message"):
            return f"{cond.get('type')}: {cond.get('message')}"
    return ""


def renewed_since(leases: Iterable[Mapping[str, Any]], since: datetime) -> set[str]:
    """Nodes whose kubelet renewed its Lease (kube-node-lease) at or after `since`: alive now,
    not merely Ready in a status written before a restart."""
    out = set()
    for lease in leases:
        renew = str((lease.get("spec") or {}).get("renewTime") or "")
        try:
            when = datetime.fromisoformat(renew)
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if when >= since:
            out.add(str(lease.get("metadata", {}).get("name", "")))
    return out


def machine_rows(
    machines: Iterable[Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]],
    *,
    alive: set[str] | None = None,
) -> list[MachineRow]:
    """`alive`, when given, limits Ready to those nodes (see `renewed_since`)."""
    ready = {
        name: node_is_ready(n) and (alive is None or name in alive)
        for n in nodes
        for name in [str(n.get("metadata", {}).get("name", ""))]
    }
    rows = []
    for machine in machines:
        meta = machine.get("metadata", {})
        spec = machine.get("spec", {}) or {}
        status = machine.get("status", {}) or {}
        node = str(status.get("nodeName", "") or "")
        phase = str(status.get("phase", "") or MachinePhase.PENDING)
        if meta.get("deletionTimestamp") and phase != MachinePhase.DELETING:
            phase = MachinePhase.DELETING
        rows.append(
            MachineRow(
                name=str(meta.get("name", "")),
                pool=str(spec.get("nodePool") or (meta.get("labels") or {}).get(LABEL_NODE_POOL, "")),
                phase=phase,
                instance=str(status.get("instanceID", "") or ""),
                node=node,
                node_ready=bool(node) and ready.get(node, False),
                step=current_step(status.get("bootstrap")),
                problem=_problem(status),
            )
        )
    return sorted(rows, key=lambda r: (r.pool, r.name))


def pool_progress(pools: Iterable[Mapping[str, Any]], rows: Sequence[MachineRow]) -> list[PoolProgress]:
    out = []
    for pool in pools:
        name = str(pool.get("metadata", {}).get("name", ""))
        desired = int((pool.get("spec", {}) or {}).get("replicas", 0) or 0)
        ready = sum(1 for r in rows if r.pool == name and r.node_ready and r.phase != MachinePhase.DELETING)
        out.append(PoolProgress(name, desired, ready))
    return sorted(out, key=lambda p: p.name)


def all_ready(progress: Sequence[PoolProgress]) -> bool:
    return all(p.done for p in progress)


def summary_line(progress: Sequence[PoolProgress]) -> str:
    ready = sum(min(p.ready, p.desired) for p in progress)
    desired = sum(p.desired for p in progress)
    pools = ", ".join(f"{p.name} {p.ready}/{p.desired}" for p in progress) or "no node pools"
    return f"nodes ready: {ready}/{desired} ({pools})"


def _dash(value: str) -> str:
    return value or "-"


def row_line(row: MachineRow) -> str:
    ready = " ready" if row.node_ready else ""
    line = (
        f"machine {row.name}: {row.phase} instance={_dash(row.instance)} node={_dash(row.node)}{ready} "
        f"step={_dash(row.step)}"
    )
    return line + (f" ({row.problem})" if row.problem else "")


def change_lines(before: Mapping[str, MachineRow], rows: Sequence[MachineRow]) -> list[str]:
    """A line per Machine that appeared or changed since `before`, and per one that went away."""
    lines = [row_line(r) for r in rows if before.get(r.name) != r]
    current = {r.name for r in rows}
    lines += [f"machine {name}: gone" for name in sorted(before) if name not in current]
    return lines


def stuck_report(rows: Sequence[MachineRow], progress: Sequence[PoolProgress]) -> list[str]:
    """Which machines keep which pool from being Ready, and why, with what to do when known."""
    lines = [summary_line(progress)]
    behind = {p.name for p in progress if not p.done}
    for row in rows:
        if row.pool not in behind or row.node_ready:
            continue
        why = row.problem or (f"waiting in phase {row.phase}" + (f" at step {row.step}" if row.step else ""))
        lines.append(f"  {row.name}: {row.phase}, node {_dash(row.node)}: {why}")
        hint = quota_hint("", row.problem)
        if hint:
            lines.append("    " + hint.replace("\n", "\n    "))
    for pool in progress:
        missing = pool.desired - sum(
            1 for r in rows if r.pool == pool.name and r.phase != MachinePhase.DELETING
        )
        if pool.name in behind and missing > 0:
            lines.append(f"  {pool.name}: {missing} machine(s) not created yet")
    return lines


def render_table(rows: Sequence[MachineRow], progress: Sequence[PoolProgress]) -> Any:
    """A rich Table of the machines, titled with the pools' progress."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=summary_line(progress), title_justify="left")
    problems = any(r.problem for r in rows)
    columns = ["machine", "phase", "instance", "node", "bootstrap step"] + (["problem"] if problems else [])
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        node = f"{row.node} (Ready)" if row.node_ready else _dash(row.node)
        # Text, not markup: a log tail may hold brackets.
        cells = [
            Text(row.name),
            Text(row.phase, style=_PHASE_STYLES.get(row.phase, "cyan")),
            Text(_dash(row.instance)),
            Text(node, style="green" if row.node_ready else ""),
            Text(_dash(row.step)),
        ]
        if problems:
            cells.append(Text(row.problem, style="red"))
        table.add_row(*cells)
    return table


_PHASE_STYLES = {
    str(MachinePhase.RUNNING): "green",
    str(MachinePhase.FAILED): "red",
    str(MachinePhase.DELETING): "yellow",
}


class View(Protocol):
    def update(self, rows: Sequence[MachineRow], progress: Sequence[PoolProgress]) -> None: ...

    def close(self) -> None: ...


class PlainView:
    """One line per change: for pipes, logs and tests."""

    def __init__(
        self, out: TextIO, *, seen: Sequence[MachineRow] = (), progress: Sequence[PoolProgress] = ()
    ) -> None:
        self._out = out
        # What was already shown (by an earlier view) is not repeated.
        self._rows: dict[str, MachineRow] = {r.name: r for r in seen}
        self._summary = summary_line(progress) if progress else ""
        self._hints: set[str] = set()

    def update(self, rows: Sequence[MachineRow], progress: Sequence[PoolProgress]) -> None:
        lines = change_lines(self._rows, rows)
        self._rows = {r.name: r for r in rows}
        for row in rows:
            hint = quota_hint("", row.problem) if row.problem else None
            if hint and hint not in self._hints:  # once, not once per machine
                self._hints.add(hint)
                lines.append(hint)
        summary = summary_line(progress)
        if summary != self._summary:
            lines.append(summary)
            self._summary = summary
        for line in lines:
            self._out.write(line + "\n")
        if lines:
            self._out.flush()

    def close(self) -> None:
        self._out.flush()


class LiveView:
    """A rich Live table, redrawn in place, for a terminal."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(console=Console(file=out), auto_refresh=False, transient=False)
        self._live.start()

    def update(self, rows: Sequence[MachineRow], progress: Sequence[PoolProgress]) -> None:
        self._live.update(render_table(rows, progress), refresh=True)

    def close(self) -> None:
        self._live.stop()
