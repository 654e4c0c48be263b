"""Clients: region, endpoint override, botocore's retries off (SdkCaller is the one retry layer)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import boto3
import pytest

from providers import registry
from providers.aws import create
from providers.aws.errors import translate
from providers.aws.session import make_clients
from providers.calls import SdkCaller
from providers.config import CloudConfig
from providers.errors import CloudError, InvalidConfiguration
from tests.unit.providers.aws.moto_env import fast_caller


def test_region_endpoint_and_no_sdk_retries() -> None:
    config = CloudConfig(
        cluster_id="c", region="eu-west-1", endpoint_url="http://127.0.0.1:5999", qps=3, burst=4
    )
    clients = make_clients(config, session=boto3.Session(aws_access_key_id="k", aws_secret_access_key="s"))
    assert clients.region == "eu-west-1"
    for client in (clients.ec2, clients.elb, clients.elbv2):
        assert client.meta.region_name == "eu-west-1"
        assert client.meta.endpoint_url == "http://127.0.0.1:5999"
        assert client.meta.config.retries is not None
        assert client.meta.config.retries["total_max_attempts"] == 1


def test_region_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(InvalidConfiguration, match="region"):
        make_clients(CloudConfig(cluster_id="c"), session=boto3.Session())


def test_registry_builds_every_capability() -> None:
    provider = registry.create(
        "aws", CloudConfig(cluster_id="c", region="us-east-1", endpoint_url="http://127.0.0.1:5999")
    )
    assert provider.name == "aws"
    assert provider.capabilities == {
        "instances",
        "instance_metadata",
        "load_balancers",
        "routes",
        "zones",
        "inventory",
    }


def test_fault_injection_from_the_cloud_config() -> None:
    config = CloudConfig(
        cluster_id="c",
        region="us-east-1",
        endpoint_url="http://127.0.0.1:1",
        provider_options={"aws": {"faultInjection": {"rate": 1.0, "seed": 3}}},
    )
    provider = create(config, caller=fast_caller())
    assert provider.zones is not None
    with pytest.raises(CloudError) as caught:
        asyncio.run(provider.zones.list_zones())  # every attempt answered by the hook, nothing sent
    assert caught.value.code in {"Throttling", "RequestLimitExceeded", "ServiceUnavailable", "InternalError"}
    with pytest.raises(InvalidConfiguration):
        registry.create("aws", replace(config, provider_options={"aws": {"faultInjection": {"rate": 2}}}))


def test_fault_injection_latency_slows_every_call() -> None:
    """`latency` (for crash tests) delays each call in its worker thread, faults or not."""
    config = CloudConfig(
        cluster_id="c",
        region="us-east-1",
        endpoint_url="http://127.0.0.1:1",
        provider_options={"aws": {"faultInjection": {"rate": 1.0, "seed": 3, "latency": 0.05}}},
    )
    caller = SdkCaller(translate, qps=1e6, burst=1_000_000, max_attempts=3, base_delay=0.0)
    provider = create(config, caller=caller)
    assert provider.zones is not None
    started = time.monotonic()
    with pytest.raises(CloudError):
        asyncio.run(provider.zones.list_zones())
    assert caller.attempts == 3 and time.monotonic() - started >= 0.15
    with pytest.raises(InvalidConfiguration):
        registry.create("aws", replace(config, provider_options={"aws": {"faultInjection": {"latency": -1}}}))
