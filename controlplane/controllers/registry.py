"""Which controllers exist, and kube-controller-manager's `--controllers` selection syntax."""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.controllers.runtime import Controller

__all__ = ["all_controllers", "select"]


def all_controllers() -> dict[str, type[Controller]]:
    """Name -> class, in start order."""
    from controlplane.controllers.bootstrapsigner import BootstrapSigner
    from controlplane.controllers.cronjob import CronJobController
    from controlplane.controllers.csrapproving import CSRApprovingController
    from controlplane.controllers.csrcleaner import CSRCleanerController
    from controlplane.controllers.csrsigning import CSRSigningController
    from controlplane.controllers.daemonset import DaemonSetController
    from controlplane.controllers.deployment import DeploymentController
    from controlplane.controllers.disruption import DisruptionController
    from controlplane.controllers.endpoints import EndpointsController
    from controlplane.controllers.endpointslice import EndpointSliceController
    from controlplane.controllers.garbage_collector import GarbageCollector
    from controlplane.controllers.job import JobController
    from controlplane.controllers.namespace import NamespaceController
    from controlplane.controllers.nodeipam import NodeIPAMController
    from controlplane.controllers.nodelifecycle import NodeLifecycleController
    from controlplane.controllers.podgc import PodGCController
    from controlplane.controllers.replicaset import ReplicaSetController
    from controlplane.controllers.replicationcontroller import ReplicationManager
    from controlplane.controllers.resourcequota import ResourceQuotaController
    from controlplane.controllers.rootcacertpublisher import RootCACertPublisher
    from controlplane.controllers.serviceaccount import ServiceAccountController
    from controlplane.controllers.serviceaccount_tokens import TokensController
    from controlplane.controllers.statefulset import StatefulSetController
    from controlplane.controllers.tainteviction import TaintEvictionController
    from controlplane.controllers.tokencleaner import TokenCleaner
    from controlplane.controllers.ttlafterfinished import TTLAfterFinishedController

    classes: list[type[Controller]] = [
        GarbageCollector,
        NamespaceController,
        ServiceAccountController,
        TokensController,
        RootCACertPublisher,
        TokenCleaner,
        BootstrapSigner,
        NodeIPAMController,
        NodeLifecycleController,
        TaintEvictionController,
        EndpointsController,
        EndpointSliceController,
        ResourceQuotaController,
        DeploymentController,
        ReplicaSetController,
        ReplicationManager,
        DaemonSetController,
        StatefulSetController,
        JobController,
        CronJobController,
        TTLAfterFinishedController,
        PodGCController,
        DisruptionController,
        CSRApprovingController,
        CSRSigningController,
        CSRCleanerController,
    ]
    return {cls.name: cls for cls in classes}


def select(spec: str, known: Iterable[str]) -> list[str]:
    """Upstream's syntax: `*` enables the defaults, `foo` enables one, `-foo` disables one;
    an empty spec enables nothing. Unknown names are an error, as upstream."""
    names = list(known)
    chosen: list[str] = []
    disabled: set[str] = set()
    star = False
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item == "*":
            star = True
        elif item.startswith("-"):
            if item[1:] not in names:
                raise ValueError(f"unknown controller {item[1:]!r}; known: {', '.join(names)}")
            disabled.add(item[1:])
        else:
            if item not in names:
                raise ValueError(f"unknown controller {item!r}; known: {', '.join(names)}")
            chosen.append(item)
    if star:
        chosen = [*names]
    return [n for n in names if n in chosen and n not in disabled]
