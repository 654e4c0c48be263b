"""The annotation parser: upstream names, clear errors, checked before any cloud call."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

import providers.aws.annotations as a
from providers.aws.annotations import parse_key_values, parse_options, parse_source_ranges
from providers.errors import InvalidConfiguration, NotSupported
from providers.model import LoadBalancerService, ServicePort


def svc(annotations: dict[str, str] | None = None, **kw: object) -> LoadBalancerService:
    settings: dict[str, object] = {
        "namespace": "default",
        "name": "web",
        "uid": "0b6a4f5e-1111-4222-8333-444455556666",
        "ports": (ServicePort("http", "TCP", 80, 30080), ServicePort("https", "TCP", 443, 30443)),
        "annotations": annotations or {},
    }
    settings.update(kw)
    return LoadBalancerService(**settings)  # type: ignore[arg-type]


def test_defaults_are_an_internet_facing_nlb_health_checking_the_traffic_port() -> None:
    opts = parse_options(svc())
    assert opts.kind == "nlb"
    assert not opts.internal
    assert opts.source_ranges == ("0.0.0.0/0",)
    hc = opts.health_check
    assert (hc.protocol, hc.port, hc.path, hc.interval, hc.timeout) == ("TCP", "traffic-port", "", 30, 10)


def test_classic_on_request_and_its_health_check_defaults() -> None:
    opts = parse_options(svc({a.TYPE: "classic"}))
    assert opts.kind == "classic"
    hc = opts.health_check
    assert (hc.protocol, hc.port, hc.healthy_threshold, hc.unhealthy_threshold, hc.timeout, hc.interval) == (
        "TCP",
        "30080",
        2,
        6,
        5,
        10,
    )
    assert parse_options(svc({a.TYPE: "nlb"}), default_kind="classic").kind == "nlb"


def test_external_traffic_policy_local_checks_the_health_check_node_port() -> None:
    opts = parse_options(svc(external_traffic_policy="Local", health_check_node_port=32123))
    assert (opts.health_check.protocol, opts.health_check.port, opts.health_check.path) == (
        "HTTP",
        "32123",
        "/healthz",
    )


def test_health_check_annotations() -> None:
    opts = parse_options(
        svc(
            {
                a.HC_PROTOCOL: "http",
                a.HC_PATH: "/ready",
                a.HC_PORT: "8080",
                a.HC_HEALTHY: "4",
                a.HC_UNHEALTHY: "5",
                a.HC_TIMEOUT: "7",
                a.HC_INTERVAL: "20",
            }
        )
    )
    hc = opts.health_check
    assert (
        hc.protocol,
        hc.path,
        hc.port,
        hc.healthy_threshold,
        hc.unhealthy_threshold,
        hc.timeout,
        hc.interval,
    ) == (
        "HTTP",
        "/ready",
        "8080",
        4,
        5,
        7,
        20,
    )


@pytest.mark.parametrize(
    ("annotations", "named"),
    [
        ({a.TYPE: "alb"}, a.TYPE),
        ({a.HC_PROTOCOL: "UDP"}, a.HC_PROTOCOL),
        ({a.HC_PROTOCOL: "HTTP", a.HC_PATH: "ready"}, a.HC_PATH),
        ({a.HC_PORT: "70000"}, a.HC_PORT),
        ({a.HC_PORT: "http"}, a.HC_PORT),
        ({a.HC_HEALTHY: "1"}, a.HC_HEALTHY),
        ({a.HC_UNHEALTHY: "eleven"}, a.HC_UNHEALTHY),
        ({a.HC_INTERVAL: "3"}, a.HC_INTERVAL),
        ({a.HC_TIMEOUT: "500"}, a.HC_TIMEOUT),
        ({a.TYPE: "classic", a.HC_TIMEOUT: "10", a.HC_INTERVAL: "10"}, a.HC_TIMEOUT),
        ({a.ADDITIONAL_TAGS: "aws:owner=me"}, a.ADDITIONAL_TAGS),
        ({a.ADDITIONAL_TAGS: "kubernetes.io/cluster/x=owned"}, a.ADDITIONAL_TAGS),
        ({a.ADDITIONAL_TAGS: "=v"}, a.ADDITIONAL_TAGS),
        ({a.TARGET_NODE_LABELS: "a=b=c"}, a.TARGET_NODE_LABELS),
        ({a.SOURCE_RANGES: "10.0.0.0/8,nonsense"}, a.SOURCE_RANGES),
        ({a.EXTRA_SECURITY_GROUPS: "default"}, a.EXTRA_SECURITY_GROUPS),
    ],
)
def test_bad_annotations_name_the_annotation(annotations: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_options(svc(annotations))
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"ports": ()}, "no ports"),
        ({"ports": (ServicePort("s", "SCTP", 9, 30009),)}, "SCTP"),
        ({"ports": (ServicePort("u", "UDP", 53, 30053),), "annotations": {a.TYPE: "classic"}}, "UDP"),
        ({"ports": (ServicePort("t", "TCP", 53, 30053), ServicePort("u", "UDP", 53, 30054))}, "mixed"),
        ({"ports": (ServicePort("t", "TCP", 80, 0),)}, "nodePort"),
        ({"load_balancer_ip": "1.2.3.4"}, "LoadBalancerIP"),
        ({"external_traffic_policy": "Local"}, "healthCheckNodePort"),
        ({"load_balancer_source_ranges": ("10.0.0.0/33",)}, "10.0.0.0/33"),
    ],
)
def test_unsupported_shapes(kw: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_options(svc(**kw))
    assert words in str(caught.value)


def test_session_affinity_and_the_lb_controllers_types_are_not_supported() -> None:
    with pytest.raises(NotSupported):
        parse_options(svc(session_affinity="ClientIP"))
    with pytest.raises(NotSupported):
        parse_options(svc({a.TYPE: "nlb-ip"}))


def test_internal_follows_upstream() -> None:
    assert parse_options(svc({a.INTERNAL: "true"})).internal
    assert parse_options(svc({a.INTERNAL: "0.0.0.0/0"})).internal
    assert not parse_options(svc({a.INTERNAL: "false"})).internal
    assert not parse_options(svc({a.INTERNAL: ""})).internal


def test_source_ranges_spec_wins_over_the_annotation() -> None:
    opts = parse_options(
        svc({a.SOURCE_RANGES: "192.168.0.0/16"}, load_balancer_source_ranges=("10.1.2.3/8",))
    )
    assert opts.source_ranges == ("10.0.0.0/8",)
    assert parse_options(svc({a.SOURCE_RANGES: " 192.168.0.0/16, 172.16.0.0/12 "})).source_ranges == (
        "192.168.0.0/16",
        "172.16.0.0/12",
    )


def test_tags_labels_and_groups() -> None:
    opts = parse_options(
        svc(
            {
                a.ADDITIONAL_TAGS: "team=infra, cost-center = 42,flag",
                a.TARGET_NODE_LABELS: "role=edge",
                a.EXTRA_SECURITY_GROUPS: "sg-1, sg-2",
            }
        )
    )
    assert opts.additional_tags == {"team": "infra", "cost-center": "42", "flag": ""}
    assert opts.target_node_labels == {"role": "edge"}
    assert opts.extra_security_groups == ("sg-1", "sg-2")


_keys = st.text(
    alphabet=st.characters(categories=["L", "N"], include_characters="-_./:"), min_size=1, max_size=20
)
_values = st.text(
    alphabet=st.characters(categories=["L", "N"], include_characters="-_./:@ "), max_size=20
).map(str.strip)


@given(st.dictionaries(_keys, _values, max_size=8))
def test_key_values_round_trip(tags: dict[str, str]) -> None:
    text = ",".join(f"{k}={v}" for k, v in tags.items())
    assert parse_key_values("x", text) == tags


@given(st.text(max_size=60))
def test_key_values_never_crash(text: str) -> None:
    try:
        parsed = parse_key_values("x", text)
    except InvalidConfiguration as exc:
        assert "x=" in str(exc)
    else:
        assert all(k and k == k.strip() for k in parsed)


@given(
    st.lists(
        st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).flatmap(
            lambda ip: st.integers(0, ip.max_prefixlen).map(lambda n: f"{ip}/{n}")
        ),
        max_size=6,
    )
)
def test_source_ranges_are_normalised_networks(cidrs: list[str]) -> None:
    parsed = parse_source_ranges("r", cidrs)
    assert len(parsed) == len(set(parsed))
    for text in cidrs:
        assert str(ipaddress.ip_network(text, strict=False)) in parsed


@given(st.integers(-1000, 1000))
def test_thresholds_are_range_checked(n: int) -> None:
    service = svc({a.HC_HEALTHY: str(n)})
    if 2 <= n <= 10:
        assert parse_options(service).health_check.healthy_threshold == n
    else:
        with pytest.raises(InvalidConfiguration, match=a.HC_HEALTHY):
            parse_options(service)
