"""The controller runtime: informers, work queues, events, leader election and the manager."""

from controlplane.controllers.runtime import resources
from controlplane.controllers.runtime.clock import Clock, FakeClock, RealClock, rfc3339
from controlplane.controllers.runtime.controller import Controller, ControllerConfig, ControllerContext
from controlplane.controllers.runtime.events import EventBroadcaster, EventRecorder
from controlplane.controllers.runtime.informer import EventHandler, Informer, InformerFactory
from controlplane.controllers.runtime.keys import key_of, split_key
from controlplane.controllers.runtime.leaderelection import LeaderElector
from controlplane.controllers.runtime.manager import ControllerManager, LeaderElectionConfig
from controlplane.controllers.runtime.workqueue import QueueShutDown, WorkQueue

R = resources

__all__ = [
    "Clock",
    "Controller",
    "ControllerConfig",
    "ControllerContext",
    "ControllerManager",
    "EventBroadcaster",
    "EventHandler",
    "EventRecorder",
    "FakeClock",
    "Informer",
    "InformerFactory",
    "LeaderElectionConfig",
    "LeaderElector",
    "QueueShutDown",
    "R",
    "RealClock",
    "WorkQueue",
    "key_of",
    "resources",
    "rfc3339",
    "split_key",
]
