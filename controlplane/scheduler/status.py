"""Plugin results and the scheduling failure they add up to (upstream framework/interface.go and
framework/types.go): Status codes, the per-node status map, the Diagnosis and the FitError whose
text is the "0/3 nodes are available: ..." message users read in events and pod conditions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controlplane.scheduler.nodeinfo import NodeInfo

__all__ = [
    "ERR_NO_NODES_AVAILABLE",
    "Code",
    "Diagnosis",
    "FitError",
    "NodeToStatus",
    "NominatingInfo",
    "NominatingMode",
    "PostFilterResult",
    "PreFilterResult",
    "Status",
    "is_success",
]

ERR_NO_NODES_AVAILABLE = "no nodes available to schedule pods"
NO_NODE_AVAILABLE_MSG = "0/{} nodes are available"


class Code(IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    # Unschedulable, and preempting pods on the node would not change that.
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5
    PENDING = 6


@dataclass
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @classmethod
    def of(cls, code: Code, *reasons: str) -> Status:
        return cls(code, tuple(reasons))

    @classmethod
    def error(cls, message: str) -> Status:
        return cls(Code.ERROR, (message,))

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def is_success(self) -> bool:
        return self.code == Code.SUCCESS

    def is_rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, Code.PENDING)

    def with_plugin(self, plugin: str) -> Status:
        self.plugin = plugin
        return self


def is_success(status: Status | None) -> bool:
    """A None status is success, as a nil *Status is upstream."""
    return status is None or status.code == Code.SUCCESS


@dataclass
class PreFilterResult:
    """The nodes a PreFilter plugin restricts the pod to; None elsewhere means all nodes."""

    node_names: set[str] | None = None

    def all_nodes(self) -> bool:
        return self.node_names is None

    def merge(self, other: PreFilterResult | None) -> PreFilterResult:
        if other is None or other.all_nodes():
            return self
        if self.all_nodes():
            return PreFilterResult(set(other.node_names or ()))
        return PreFilterResult((self.node_names or set()) & (other.node_names or set()))


class NominatingMode(IntEnum):
    NOOP = 0
    OVERRIDE = 1


@dataclass(frozen=True)
class NominatingInfo:
    nominated_node_name: str = ""
    mode: NominatingMode = NominatingMode.NOOP


CLEAR_NOMINATED_NODE = NominatingInfo("", NominatingMode.OVERRIDE)


@dataclass
class PostFilterResult:
    nominating_info: NominatingInfo | None = None

    @classmethod
    def with_nominated_node(cls, name: str) -> PostFilterResult:
        return cls(NominatingInfo(name, NominatingMode.OVERRIDE))


class NodeToStatus:
    """Statuses of the nodes that failed; nodes not in the map share `absent` (upstream's
    NodeToStatus with its absentNodesStatus, UnschedulableAndUnresolvable by default)."""

    def __init__(self, statuses: dict[str, Status] | None = None, absent: Status | None = None) -> None:
        self.statuses: dict[str, Status] = dict(statuses or {})
        self.absent = absent or Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def get(self, node: str) -> Status:
        return self.statuses.get(node, self.absent)

    def set(self, node: str, status: Status) -> None:
        self.statuses[node] = status

    def __len__(self) -> int:
        return len(self.statuses)

    def nodes_for_status_code(self, nodes: Sequence[NodeInfo], code: Code) -> list[NodeInfo]:
        """The nodes (in `nodes`' order) whose status has `code`, absent ones included when
        the absent status has it."""
        out: list[NodeInfo] = []
        for node in nodes:
            status = self.statuses.get(node.name)
            if status is None:
                if self.absent.code == code:
                    out.append(node)
            elif status.code == code:
                out.append(node)
        return out


@dataclass
class Diagnosis:
    node_to_status: NodeToStatus = field(default_factory=NodeToStatus)
    unschedulable_plugins: set[str] = field(default_factory=set)
    pending_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""

    def add_plugin_status(self, status: Status) -> None:
        if not status.plugin:
            return
        if status.is_rejected():
            self.unschedulable_plugins.add(status.plugin)
        if status.code == Code.PENDING:
            self.pending_plugins.add(status.plugin)


class FitError(Exception):
    """No node fits the pod. `str()` is upstream's FitError.Error(): reasons counted per node,
    rendered "<count> <reason>" and sorted as strings, PreFilter and PostFilter messages around."""

    def __init__(self, pod_key: str, num_all_nodes: int, diagnosis: Diagnosis) -> None:
        super().__init__(pod_key)
        self.pod_key = pod_key
        self.num_all_nodes = num_all_nodes
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        return fit_error_message(self.num_all_nodes, self.diagnosis)


def fit_error_message(num_all_nodes: int, diagnosis: Diagnosis) -> str:
    msg = NO_NODE_AVAILABLE_MSG.format(num_all_nodes) + ":"
    if diagnosis.pre_filter_msg:
        msg += f" {diagnosis.pre_filter_msg}."
    else:
        counts: dict[str, int] = {}
        statuses = diagnosis.node_to_status
        for status in statuses.statuses.values():
            for reason in status.reasons:
                counts[reason] = counts.get(reason, 0) + 1
        absent = num_all_nodes - len(statuses)
        if absent > 0:
            for reason in statuses.absent.reasons:
                counts[reason] = counts.get(reason, 0) + absent
        histogram = sorted(f"{count} {reason}" for reason, count in counts.items())
        if histogram:
            msg += f" {', '.join(histogram)}."
    if diagnosis.post_filter_msg:
        msg += f" {diagnosis.post_filter_msg}"
    return msg
