"""Providers by name. Each is imported only when asked for, so `--cloud-provider local` never
imports boto3 and a missing SDK only breaks the cloud that needs it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from providers.capabilities import CloudProvider
from providers.config import CloudConfig
from providers.errors import NotSupported

__all__ = ["Factory", "create", "names", "register"]

Factory = Callable[[CloudConfig], CloudProvider]

# name -> "module:function"; the function takes a CloudConfig and returns a CloudProvider.
_BUILTIN: dict[str, str] = {
    "aws": "providers.aws:create",
    "local": "providers.local:create",
}
_REGISTERED: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Add a provider (tests and out-of-tree clouds); replaces one of the same name."""
    _REGISTERED[name] = factory


def names() -> list[str]:
    return sorted({*_BUILTIN, *_REGISTERED})


def _factory(name: str) -> Factory:
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = _BUILTIN.get(name)
    if target is None:
        raise NotSupported(f"unknown cloud provider {name!r}; known: {', '.join(names())}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return cast(Factory, getattr(module, attr))


def create(name: str, config: CloudConfig) -> CloudProvider:
    return _factory(name)(config)
