"""Settings shared by every test."""

from hypothesis import HealthCheck, settings

# CI machines are shared and have 2 cores: how long an example takes to generate or run says
# nothing about correctness there, so the timing health checks and deadlines are off. Every
# other health check (filtering too much, data too large, ...) still fails a test.
settings.register_profile(
    "pinnace",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("pinnace")
