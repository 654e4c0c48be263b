from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.config import CloudConfig, load_cloud_config, parse_cloud_config
from providers.errors import InvalidConfiguration

FULL = """
clusterID: prod-eu
region: eu-west-1
zone: eu-west-1a
vpcID: vpc-0123
subnetIDs: [subnet-1, subnet-2]
routeTableIDs: []
securityGroupIDs: [sg-1]
endpointURL: http://127.0.0.1:5000
tags: {team: infra}
qps: 5
burst: 7
aws: {elbType: nlb}
local: {routeLimit: 3}
"""


def test_the_documented_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(FULL)
    config = load_cloud_config(path)
    assert config == CloudConfig(
        cluster_id="prod-eu",
        region="eu-west-1",
        zone="eu-west-1a",
        vpc_id="vpc-0123",
        subnet_ids=("subnet-1", "subnet-2"),
        route_table_ids=(),
        security_group_ids=("sg-1",),
        endpoint_url="http://127.0.0.1:5000",
        tags={"team": "infra"},
        qps=5.0,
        burst=7,
        provider_options={"aws": {"elbType": "nlb"}, "local": {"routeLimit": 3}},
    )
    assert config.options("aws") == {"elbType": "nlb"}
    assert config.options("gcp") == {}


def test_defaults_and_the_default_cluster_id() -> None:
    config = parse_cloud_config(None, default_cluster_id="pinnace")
    assert config == CloudConfig(cluster_id="pinnace")
    assert (config.qps, config.burst) == (10.0, 20)
    assert parse_cloud_config({"clusterID": "mine"}, default_cluster_id="pinnace").cluster_id == "mine"


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({}, "clusterID is required"),
        ([], "must be a mapping"),
        ({"clusterID": "c", "regoin": "typo"}, "unknown field 'regoin'"),
        ({"clusterID": "c", "subnetIDs": "subnet-1"}, "subnetIDs must be a list"),
        ({"clusterID": "c", "subnetIDs": [1]}, "subnetIDs must be a list"),
        ({"clusterID": "c", "region": 5}, "region must be a string"),
        ({"clusterID": "c", "tags": {"a": 1}}, "tags must map"),
        ({"clusterID": "c", "qps": 0}, "qps must be > 0"),
        ({"clusterID": "c", "burst": 0.5}, "burst >= 1"),
    ],
)
def test_bad_documents_say_what_is_wrong(doc: Any, words: str) -> None:
    with pytest.raises(InvalidConfiguration, match=words):
        parse_cloud_config(doc)


def test_unreadable_or_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfiguration, match=r"missing\.yaml"):
        load_cloud_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusterID: [unclosed\n")
    with pytest.raises(InvalidConfiguration, match=r"bad\.yaml"):
        load_cloud_config(bad)


_ids = st.lists(st.from_regex(r"[a-z]+-[0-9a-f]{1,8}", fullmatch=True), max_size=3)
_text = st.text(min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    cluster=_text,
    region=st.text(max_size=12),
    subnets=_ids,
    tags=st.dictionaries(_text, st.text(max_size=12), max_size=3),
    qps=st.floats(min_value=0.01, max_value=1e4),
    burst=st.integers(min_value=1, max_value=10_000),
    section=st.dictionaries(_text, st.integers(), max_size=2),
)
def test_valid_documents_round_trip(
    cluster: str,
    region: str,
    subnets: list[str],
    tags: dict[str, str],
    qps: float,
    burst: int,
    section: dict[str, int],
) -> None:
    doc = {
        "clusterID": cluster,
        "region": region,
        "subnetIDs": subnets,
        "tags": tags,
        "qps": qps,
        "burst": burst,
        "gcp": section,
    }
    config = parse_cloud_config(doc)
    assert (config.cluster_id, config.region, config.subnet_ids) == (cluster, region, tuple(subnets))
    assert dict(config.tags) == tags
    assert (config.qps, config.burst) == (qps, burst)
    assert config.options("gcp") == section


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=10),
        st.none() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2),
        max_size=5,
    )
)
def test_any_document_parses_or_is_invalid_configuration(doc: dict[str, Any]) -> None:
    with contextlib.suppress(InvalidConfiguration):
        parse_cloud_config(doc)
