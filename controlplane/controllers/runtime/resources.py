"""Paths of the resources the controllers, scheduler and CCM read and write."""

from __future__ import annotations

from controlplane.client import ResourcePath

PODS = ResourcePath("", "v1", "pods")
NODES = ResourcePath("", "v1", "nodes", namespaced=False)
NAMESPACES = ResourcePath("", "v1", "namespaces", namespaced=False)
SERVICES = ResourcePath("", "v1", "services")
ENDPOINTS = ResourcePath("", "v1", "endpoints")
EVENTS = ResourcePath("", "v1", "events")
SERVICEACCOUNTS = ResourcePath("", "v1", "serviceaccounts")
CONFIGMAPS = ResourcePath("", "v1", "configmaps")
SECRETS = ResourcePath("", "v1", "secrets")
RESOURCEQUOTAS = ResourcePath("", "v1", "resourcequotas")
LIMITRANGES = ResourcePath("", "v1", "limitranges")
PVCS = ResourcePath("", "v1", "persistentvolumeclaims")
PVS = ResourcePath("", "v1", "persistentvolumes", namespaced=False)
REPLICATIONCONTROLLERS = ResourcePath("", "v1", "replicationcontrollers")
ENDPOINTSLICES = ResourcePath("discovery.k8s.io", "v1", "endpointslices")
DEPLOYMENTS = ResourcePath("apps", "v1", "deployments")
REPLICASETS = ResourcePath("apps", "v1", "replicasets")
STATEFULSETS = ResourcePath("apps", "v1", "statefulsets")
DAEMONSETS = ResourcePath("apps", "v1", "daemonsets")
CONTROLLERREVISIONS = ResourcePath("apps", "v1", "controllerrevisions")
JOBS = ResourcePath("batch", "v1", "jobs")
CRONJOBS = ResourcePath("batch", "v1", "cronjobs")
LEASES = ResourcePath("coordination.k8s.io", "v1", "leases")
PDBS = ResourcePath("policy", "v1", "poddisruptionbudgets")
PRIORITYCLASSES = ResourcePath("scheduling.k8s.io", "v1", "priorityclasses", namespaced=False)
STORAGECLASSES = ResourcePath("storage.k8s.io", "v1", "storageclasses", namespaced=False)
