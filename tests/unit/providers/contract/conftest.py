"""The `cloud` fixture: every contract test runs once per registered cloud.

Each `provider_<name>.py` module in this directory registers one cloud with
`@harness.contract_provider("<name>")`; adding a cloud to the suite is adding such a module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.providers.contract.harness import PROVIDERS, ContractCloud

for _module in pkgutil.iter_modules([str(Path(__file__).parent)]):
    if _module.name.startswith("provider_"):
        importlib.import_module(f"{__package__}.{_module.name}")


@pytest.fixture(params=sorted(PROVIDERS))
async def cloud(request: pytest.FixtureRequest) -> AsyncIterator[ContractCloud]:
    async with PROVIDERS[request.param]() as value:
        yield value
