"""Opt-in tests against real clouds (none yet; they arrive with the cloud issues)."""
