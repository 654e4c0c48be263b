"""The in-tree plugins, one module each, and the default profile (apis/config/v1/default_plugins.go:
the same order and weights, less the volume plugins and ImageLocality)."""

from __future__ import annotations

from controlplane.scheduler.framework import PluginFactory, PluginSpec
from controlplane.scheduler.plugins import (
    default_binder,
    default_preemption,
    inter_pod_affinity,
    node_affinity,
    node_name,
    node_ports,
    node_resources_balanced_allocation,
    node_resources_fit,
    node_unschedulable,
    pod_topology_spread,
    priority_sort,
    scheduling_gates,
    taint_toleration,
)

__all__ = ["DEFAULT_PLUGINS", "registry"]

DEFAULT_PLUGINS: tuple[PluginSpec, ...] = (
    PluginSpec("SchedulingGates"),
    PluginSpec("PrioritySort"),
    PluginSpec("NodeUnschedulable"),
    PluginSpec("NodeName"),
    PluginSpec("TaintToleration", 3),
    PluginSpec("NodeAffinity", 2),
    PluginSpec("NodePorts"),
    PluginSpec("NodeResourcesFit", 1),
    PluginSpec("PodTopologySpread", 2),
    PluginSpec("InterPodAffinity", 2),
    PluginSpec("DefaultPreemption"),
    PluginSpec("NodeResourcesBalancedAllocation", 1),
    PluginSpec("DefaultBinder"),
)


def registry() -> dict[str, PluginFactory]:
    return {
        "SchedulingGates": scheduling_gates.new,
        "PrioritySort": priority_sort.new,
        "NodeUnschedulable": node_unschedulable.new,
        "NodeName": node_name.new,
        "TaintToleration": taint_toleration.new,
        "NodeAffinity": node_affinity.new,
        "NodePorts": node_ports.new,
        "NodeResourcesFit": node_resources_fit.new,
        "PodTopologySpread": pod_topology_spread.new,
        "InterPodAffinity": inter_pod_affinity.new,
        "DefaultPreemption": default_preemption.new,
        "NodeResourcesBalancedAllocation": node_resources_balanced_allocation.new,
        "DefaultBinder": default_binder.new,
    }
