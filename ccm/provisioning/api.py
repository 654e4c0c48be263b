"""Names shared by everything that reads or writes NodePools and Machines.

Both kinds are cluster-scoped (like Nodes, and like Karpenter's NodePool/NodeClaim), group
`infra.pinnace.dev`, version `v1alpha1`.

NodePool
    spec: replicas, provider, instanceType, image, os (ubuntu-22.04 | ubuntu-24.04 | debian-12),
      zones[], subnets[], kubernetesVersion ("1.33"), labels{}, taints[{key,value,effect}],
      bootstrap{packageSource{type: upstream|mirror|offline, url, keyURL, keyFingerprint},
                joinTimeout ("10m"), tokenTTL ("30m")},
      remediation{maxUnhealthy (int or "NN%"), notReadyTimeout ("5m")},
      autoscaling{enabled, minReplicas, maxReplicas, scaleDownDelay ("10m")}
    status: replicas, readyReplicas, selector (for the scale subresource), observedGeneration,
      conditions[]
    subresources: status; scale (.spec.replicas, .status.replicas, .status.selector)

Machine (one per instance, ownerReference to its NodePool, label `infra.pinnace.dev/node-pool`)
    spec: nodePool, provider, instanceType, image, os, zone, subnet, kubernetesVersion
    status:
      phase: Pending | Provisioning | Bootstrapping | Running | Failed | Deleting
      instanceID, providerID, nodeName, zone, addresses[{type,address}]
      bootstrap: written by the node itself (its bootstrap token may patch only this Machine's
        status), always the whole object so that a JSON merge patch replaces it:
          steps: [{name, state: Running | Succeeded | Failed, startedAt, finishedAt, logTail}]
          failedStep: <name> (absent unless a step failed)
          completed: true once the success marker is written
      conditions[]: InstanceProvisioned, BootstrapSucceeded, NodeJoined, NodeReady, plus one per
        bootstrap step (type = the step name in CamelCase, e.g. InstallKubelet), written by the operator
      failureReason, failureMessage
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ANNOTATION_DELETE_MACHINE",
    "GROUP",
    "LABEL_MACHINE",
    "LABEL_NODE_POOL",
    "MACHINES",
    "NODEPOOLS",
    "VERSION",
    "MachinePhase",
    "StepState",
    "step_condition_type",
]

GROUP = "infra.pinnace.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
NODEPOOLS = "nodepools"
MACHINES = "machines"

# On Machines and on their Nodes.
LABEL_NODE_POOL = f"{GROUP}/node-pool"
LABEL_MACHINE = f"{GROUP}/machine"
# Set on a Machine to make a scale-down remove that one (cluster-autoscaler's convention).
ANNOTATION_DELETE_MACHINE = f"{GROUP}/delete-machine"


class MachinePhase(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    BOOTSTRAPPING = "Bootstrapping"
    RUNNING = "Running"
    FAILED = "Failed"
    DELETING = "Deleting"


class StepState(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


def step_condition_type(step: str) -> str:
    """`install-kubelet` -> `InstallKubelet`: a bootstrap step's condition type on its Machine."""
    return "".join(part[:1].upper() + part[1:] for part in step.replace("_", "-").split("-") if part)
