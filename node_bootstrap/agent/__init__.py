"""The simulated node agent (`pinnace node-agent`): a kubelet stand-in for one node or many.

It registers Nodes, renews their Leases, keeps NodeStatus current, runs the pods bound to its
nodes through the kubelet's phases with simulated containers, and serves their logs on the
kubelet's `/containerLogs` endpoint. It talks to the API server only through
`controlplane.client`, like any other client. Its credentials are a kubeconfig, or each node's
own system:node:<name> certificate obtained by TLS bootstrap with a token and kept rotated
(`bootstrap`, `csr`, `discovery`).
"""

from node_bootstrap.agent.agent import NodeAgent, run_agents
from node_bootstrap.agent.clock import Clock, FakeClock, RealClock
from node_bootstrap.agent.config import AgentConfig

__all__ = ["AgentConfig", "Clock", "FakeClock", "NodeAgent", "RealClock", "run_agents"]
