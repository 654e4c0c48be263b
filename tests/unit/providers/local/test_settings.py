from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.config import CloudConfig, parse_cloud_config
from providers.errors import InvalidConfiguration
from providers.local import LocalSettings


def test_defaults() -> None:
    settings = LocalSettings.from_config(CloudConfig(cluster_id="c"))
    assert settings.region == "local-1"
    assert settings.zones == ("local-1a", "local-1b", "local-1c")
    assert settings.default_zone == "local-1a"
    assert settings.state_file == ":memory:"
    assert settings.instance_cidr == ipaddress.IPv4Network("10.0.0.0/16")
    assert settings.load_balancer_cidr == ipaddress.IPv4Network("192.0.2.0/24")
    assert settings.route_limit == 50
    assert settings.route_tables == 1
    assert settings.load_balancer_ingress == "ip"
    assert (settings.qps, settings.burst) == (10.0, 20)
    assert settings.faults.rate == 0.0


def test_from_a_cloud_config_document() -> None:
    config = parse_cloud_config(
        {
            "clusterID": "c",
            "region": "lab",
            "zone": "lab-z2",
            "routeTableIDs": ["rtb-1"],
            "tags": {"team": "infra"},
            "local": {
                "stateFile": "/tmp/cloud.db",
                "zones": ["lab-z1", "lab-z2"],
                "instanceCIDR": "172.16.0.0/20",
                "publicIPs": True,
                "loadBalancerCIDR": "203.0.113.0/28",
                "loadBalancerIngress": "both",
                "routeLimit": 3,
                "bootSeconds": 2.5,
                "qps": 100,
                "burst": 50,
                "faults": {"rate": 0.2, "seed": 7, "afterShare": 0.5, "retryAfter": 0.1},
            },
        }
    )
    s = LocalSettings.from_config(config)
    assert (s.region, s.zones, s.default_zone) == ("lab", ("lab-z1", "lab-z2"), "lab-z2")
    assert s.state_file == "/tmp/cloud.db"
    assert s.instance_cidr == ipaddress.IPv4Network("172.16.0.0/20")
    assert s.public_ips
    assert s.load_balancer_cidr == ipaddress.IPv4Network("203.0.113.0/28")
    assert s.load_balancer_ingress == "both"
    assert s.route_limit == 3
    assert s.boot_seconds == 2.5
    assert (s.qps, s.burst) == (100.0, 50)
    assert (s.faults.rate, s.faults.seed, s.faults.after_share, s.faults.retry_after) == (0.2, 7, 0.5, 0.1)
    assert s.route_table_ids == ("rtb-1",)
    assert s.tags == {"team": "infra"}


@pytest.mark.parametrize(
    "options",
    [
        {"zones": "local-1a"},
        {"zones": [""]},
        {"instanceCIDR": "10.0.0.0/33"},
        {"instanceCIDR": "10.0.0.0/30"},
        {"loadBalancerIngress": "dns"},
        {"routeLimit": 0},
        {"routeLimit": "50"},
        {"bootSeconds": -1},
        {"publicIPs": "yes"},
        {"qps": 0},
        {"faults": {"rate": 1.5}},
        {"faults": []},
    ],
)
def test_bad_options_are_invalid_configuration(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidConfiguration):
        LocalSettings.from_config(CloudConfig(cluster_id="c", provider_options={"local": options}))


def test_a_default_zone_outside_the_zones_is_refused() -> None:
    with pytest.raises(InvalidConfiguration, match="not one of"):
        LocalSettings.from_config(CloudConfig(cluster_id="c", zone="elsewhere-1a"))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "zones",
                "instanceCIDR",
                "routeLimit",
                "bootSeconds",
                "faults",
                "qps",
                "loadBalancerIngress",
                "publicIPs",
            ]
        ),
        _json,
        max_size=4,
    )
)
def test_any_options_give_settings_or_invalid_configuration(options: dict[str, Any]) -> None:
    """Whatever a user writes, the answer is settings or a clear configuration error, never a crash."""
    with contextlib.suppress(InvalidConfiguration):
        LocalSettings.from_config(CloudConfig(cluster_id="c", provider_options={"local": options}))
