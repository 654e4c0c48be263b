"""Node autoscaling for NodePools that opt in (`spec.autoscaling.enabled`): pools grow for pods
the scheduler cannot place and shrink by their empty nodes, within minReplicas..maxReplicas.

The autoscaler only writes NodePool `spec.replicas` and the delete-machine annotation on
Machines; the NodePool operator turns those into instances created, drained and terminated."""

from ccm.provisioning.autoscaler.loop import run_autoscaler

__all__ = ["run_autoscaler"]
