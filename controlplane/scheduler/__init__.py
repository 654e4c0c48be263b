"""The scheduler: kube-scheduler's framework in small (queue, cache, framework, plugins)."""

from controlplane.scheduler.scheduler import DEFAULT_SCHEDULER_NAME, Scheduler, SchedulerRunner, run_scheduler

__all__ = ["DEFAULT_SCHEDULER_NAME", "Scheduler", "SchedulerRunner", "run_scheduler"]
