"""scripts/kopf-e2e retries a kopf test once only when its failure is a socket an earlier test's
operator leaked; anything else fails the run. The classification is text matching on pytest's
report, so it is pinned here on the reports it has to tell apart."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "kopf-e2e"

LEAK = (
    "pytest.PytestUnraisableExceptionWarning: Exception ignored in: <socket.socket fd=20>\n"
    "E       ResourceWarning: unclosed <socket.socket fd=20, family=2, type=1, proto=6>\n"
)
# What the traceback of that same failure also printed in a CI run: aiohttp's call arguments.
TRACEBACK_ARGS = (
    "url = 'https://127.0.0.1:40467/apis/admissionregistration.k8s.io/v1'\n"
    "kwargs = {'json': None, 'timeout': ClientTimeout(total=300, connect=None)}\n"
)


def _script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("kopf_e2e_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _retried(text: str) -> bool:
    script = _script()
    return bool(script.LEAK_ONLY.search(text)) and not script.LEAK_OTHER.search(text)


def test_a_leaked_socket_is_retried_even_when_the_traceback_shows_client_timeout_arguments() -> None:
    assert _retried(LEAK)
    assert _retried(LEAK + TRACEBACK_ARGS)


def test_real_failures_beside_a_leak_are_not_retried() -> None:
    assert not _retried(LEAK + "E       AssertionError: assert 'x' in ''\n")
    assert not _retried(LEAK + "E       Failed: Timeout >30.0s\n")
    assert not _retried(LEAK + "E       TimeoutError\n")
    assert not _retried(LEAK + "E       DeprecationWarning: something\n")
    assert not _retried("E       AssertionError: no leak at all\n")
