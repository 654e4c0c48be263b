"""boto3 clients for one provider: the standard credential chain, the configured region, an
optional endpoint URL (moto's server, another AWS-compatible API), botocore's own retries turned
off (SdkCaller is the one retry layer), and a single SdkCaller shared by every capability so
the client-side rate limit covers all of the provider's calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from providers.calls import SdkCaller
from providers.config import CloudConfig
from providers.errors import InvalidConfiguration

from .errors import translate

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_elb import ElasticLoadBalancingClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client

__all__ = ["AwsClients", "make_clients"]


@dataclass(frozen=True)
class AwsClients:
    ec2: EC2Client
    elb: ElasticLoadBalancingClient
    elbv2: ElasticLoadBalancingv2Client
    caller: SdkCaller
    region: str


def make_clients(
    config: CloudConfig, *, session: boto3.Session | None = None, caller: SdkCaller | None = None
) -> AwsClients:
    """Build the clients once, up front: creating boto3 clients is not thread-safe, using them is."""
    session = session or boto3.Session()
    region = config.region or session.region_name or ""
    if not region:
        raise InvalidConfiguration("aws: no region; set region in the cloud config or AWS_REGION")
    botocore_config = Config(
        region_name=region,
        retries={"total_max_attempts": 1},
        user_agent_extra="pinnace-ccm",
        max_pool_connections=32,
    )
    endpoint = config.endpoint_url or None
    ec2 = session.client("ec2", config=botocore_config, endpoint_url=endpoint)
    elb = session.client("elb", config=botocore_config, endpoint_url=endpoint)
    elbv2 = session.client("elbv2", config=botocore_config, endpoint_url=endpoint)
    return AwsClients(
        ec2=ec2,
        elb=elb,
        elbv2=elbv2,
        caller=caller or SdkCaller(translate, qps=config.qps, burst=config.burst),
        region=region,
    )
