"""What `pinnace up` shows: Machines, NodePools and Nodes -> rows, lines, a table, a stuck report."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controlplane.up import progress
from controlplane.up.progress import MachineRow, PoolProgress


def machine(name: str, *, phase: str = "", pool: str = "default", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"infra.pinnace.dev/node-pool": pool}},
        "spec": {"nodePool": pool},
        "status": {"phase": phase, **status} if phase else dict(status),
    }


def node(name: str, ready: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def pool(name: str, replicas: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"replicas": replicas}}


STEPS = [
    {"name": "load-kernel-modules", "state": "Succeeded"},
    {"name": "install-containerd", "state": "Succeeded"},
    {"name": "install-kubelet", "state": "Running"},
]


def test_current_step() -> None:
    assert progress.current_step(None) == ""
    assert progress.current_step({"steps": STEPS}) == "install-kubelet"
    assert progress.current_step({"steps": STEPS[:2]}) == "install-containerd (ok)"
    assert progress.current_step({"steps": STEPS, "completed": True}) == "done"
    failed = {
        "steps": [*STEPS[:2], {"name": "install-kubelet", "state": "Failed"}],
        "failedStep": "install-kubelet",
    }
    assert progress.current_step(failed) == "install-kubelet (failed)"


def test_rows_from_machines_and_nodes() -> None:
    machines = [
        machine("default-b", phase="Bootstrapping", instanceID="i-2", bootstrap={"steps": STEPS}),
        machine(
            "default-a",
            phase="Running",
            instanceID="i-1",
            nodeName="node-a",
            bootstrap={"steps": STEPS, "completed": True},
        ),
        machine("default-c"),
    ]
    rows = progress.machine_rows(machines, [node("node-a", True)])
    assert rows == [
        MachineRow("default-a", "default", "Running", "i-1", "node-a", True, "done", ""),
        MachineRow("default-b", "default", "Bootstrapping", "i-2", "", False, "install-kubelet", ""),
        MachineRow("default-c", "default", "Pending", "", "", False, "", ""),
    ]


def test_a_failed_step_is_the_problem_with_its_last_log_line() -> None:
    bootstrap = {
        "steps": [
            {"name": "install-kubelet", "state": "Failed", "logTail": "E: 404\nE: unable to fetch kubelet\n"}
        ],
        "failedStep": "install-kubelet",
    }
    (row,) = progress.machine_rows([machine("m", phase="Failed", bootstrap=bootstrap)], [])
    assert row.problem == "step install-kubelet failed: E: unable to fetch kubelet"
    assert row.step == "install-kubelet (failed)"


def test_failure_message_and_false_conditions_explain_a_machine() -> None:
    failed = machine(
        "m1", phase="Failed", failureReason="CreateFailed", failureMessage="VcpuLimitExceeded: too many"
    )
    waiting = machine(
        "m2",
        phase="Provisioning",
        conditions=[{"type": "NodeJoined", "status": "False", "message": "no node yet"}],
    )
    rows = progress.machine_rows([failed, waiting], [])
    assert rows[0].problem == "CreateFailed: VcpuLimitExceeded: too many"
    assert rows[1].problem == "NodeJoined: no node yet"


def test_a_deleted_machine_shows_as_deleting_and_does_not_count() -> None:
    gone = machine("m", phase="Running", nodeName="n")
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    rows = progress.machine_rows([gone], [node("n", True)])
    assert rows[0].phase == "Deleting"
    assert progress.pool_progress([pool("default", 1)], rows) == [PoolProgress("default", 1, 0)]


def test_pool_progress_counts_ready_nodes_per_pool() -> None:
    machines = [
        machine("a-1", pool="a", phase="Running", nodeName="n1"),
        machine("a-2", pool="a", phase="Running", nodeName="n2"),
        machine("b-1", pool="b", phase="Running", nodeName="n3"),
    ]
    rows = progress.machine_rows(machines, [node("n1", True), node("n2", False), node("n3", True)])
    prog = progress.pool_progress([pool("b", 1), pool("a", 2)], rows)
    assert prog == [PoolProgress("a", 2, 1), PoolProgress("b", 1, 1)]
    assert not progress.all_ready(prog)
    assert progress.summary_line(prog) == "nodes ready: 2/3 (a 1/2, b 1/1)"
    assert progress.all_ready([PoolProgress("a", 2, 2), PoolProgress("b", 0, 0)])
    assert progress.all_ready([])


def test_change_lines_report_new_changed_and_gone_machines() -> None:
    first = progress.machine_rows([machine("m1", phase="Pending"), machine("m2", phase="Pending")], [])
    before = {r.name: r for r in first}
    second = progress.machine_rows([machine("m1", phase="Provisioning", instanceID="i-1"), machine("m3")], [])
    lines = progress.change_lines(before, second)
    assert lines == [
        "machine m1: Provisioning instance=i-1 node=- step=-",
        "machine m3: Pending instance=- node=- step=-",
        "machine m2: gone",
    ]
    assert progress.change_lines({r.name: r for r in second}, second) == []


def test_plain_view_prints_only_changes() -> None:
    out = io.StringIO()
    view = progress.PlainView(out)
    rows = progress.machine_rows([machine("m1", phase="Running", nodeName="n1")], [node("n1", True)])
    prog = progress.pool_progress([pool("default", 1)], rows)
    view.update(rows, prog)
    view.update(rows, prog)
    assert out.getvalue().splitlines() == [
        "machine m1: Running instance=- node=n1 ready step=-",
        "nodes ready: 1/1 (default 1/1)",
    ]
    later = progress.PlainView(out, seen=rows, progress=prog)
    later.update(rows, prog)
    assert len(out.getvalue().splitlines()) == 2


def test_stuck_report_says_which_machine_and_why() -> None:
    rows = progress.machine_rows(
        [
            machine("ok", phase="Running", nodeName="n1"),
            machine("slow", phase="Bootstrapping", instanceID="i-2", bootstrap={"steps": STEPS}),
            machine("quota", phase="Failed", failureMessage="RunInstances: VcpuLimitExceeded: no"),
        ],
        [node("n1", True)],
    )
    prog = progress.pool_progress([pool("default", 4)], rows)
    report = "\n".join(progress.stuck_report(rows, prog))
    assert "nodes ready: 1/4" in report
    assert "ok:" not in report
    assert "slow: Bootstrapping, node -: waiting in phase Bootstrapping at step install-kubelet" in report
    assert "quota: Failed" in report
    assert "L-1216C47A" in report  # how to raise the quota
    assert "default: 1 machine(s) not created yet" in report


def test_render_table_has_a_row_per_machine() -> None:
    from rich.console import Console

    rows = progress.machine_rows(
        [
            machine("m1", phase="Running", nodeName="n1", instanceID="i-1"),
            machine("m2", phase="Failed", failureMessage="[x] bad"),
        ],
        [node("n1", True)],
    )
    table = progress.render_table(rows, progress.pool_progress([pool("default", 2)], rows))
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(table)
    text = out.getvalue()
    assert "nodes ready: 1/2" in text
    assert "n1 (Ready)" in text
    assert "[x] bad" in text  # brackets are text, not markup
    assert table.row_count == 2


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]), st.booleans(), st.sampled_from(["Running", "Pending", "Failed"])
        ),
        max_size=8,
    ),
    st.integers(0, 5),
    st.integers(0, 5),
)
def test_ready_counts_never_exceed_machines_with_ready_nodes(
    spec: list[tuple[str, bool, str]], want_a: int, want_b: int
) -> None:
    machines = [machine(f"m{i}", pool=p, phase=ph, nodeName=f"n{i}") for i, (p, _, ph) in enumerate(spec)]
    nodes = [node(f"n{i}", ready) for i, (_, ready, _) in enumerate(spec)]
    rows = progress.machine_rows(machines, nodes)
    prog = {p.name: p for p in progress.pool_progress([pool("a", want_a), pool("b", want_b)], rows)}
    for name in ("a", "b"):
        assert prog[name].ready == sum(1 for p, ready, _ in spec if p == name and ready)
    assert progress.all_ready(list(prog.values())) == all(p.ready >= p.desired for p in prog.values())


def test_only_nodes_whose_lease_was_renewed_since_count_as_ready() -> None:
    from datetime import UTC, datetime

    leases = [
        {"metadata": {"name": "fresh"}, "spec": {"renewTime": "2026-01-01T10:00:05.000001Z"}},
        {"metadata": {"name": "stale"}, "spec": {"renewTime": "2026-01-01T09:59:00.000000Z"}},
        {"metadata": {"name": "never"}, "spec": {}},
    ]
    alive = progress.renewed_since(leases, datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC))
    assert alive == {"fresh"}
    machines = [
        machine("a", phase="Running", nodeName="fresh"),
        machine("b", phase="Running", nodeName="stale"),
    ]
    rows = progress.machine_rows(machines, [node("fresh", True), node("stale", True)], alive=alive)
    assert [r.node_ready for r in rows] == [True, False]


def test_render_table_drops_the_problem_column_when_all_is_well() -> None:
    rows = progress.machine_rows([machine("m1", phase="Running", nodeName="n1")], [node("n1", True)])
    table = progress.render_table(rows, progress.pool_progress([pool("default", 1)], rows))
    assert [c.header for c in table.columns] == ["machine", "phase", "instance", "node", "bootstrap step"]


def test_plain_view_says_how_to_raise_a_quota_once() -> None:
    out = io.StringIO()
    view = progress.PlainView(out)
    failed = [
        machine(f"m{i}", phase="Failed", failureMessage="RunInstances: VcpuLimitExceeded: no")
        for i in range(3)
    ]
    rows = progress.machine_rows(failed, [])
    view.update(rows, progress.pool_progress([pool("default", 3)], rows))
    assert out.getvalue().count("request-service-quota-increase") == 1
