"""The rule matcher against upstream's examples and, with hypothesis, against a reference model
written independently of it; and the escalation check's soundness."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api.rbac.escalation import compact_rules, covers, escalation_message
from controlplane.api.rbac.policy import Binding, Role, RoleRef, Subject, applies_to_user
from controlplane.api.rbac.resolver import PolicySnapshot, RuleResolver
from controlplane.api.rbac.rules import PolicyRule, Request, compact_string, rule, rule_allows, rules_allow
from controlplane.apiserver.authn import UserInfo


def res(
    verb: str, resource: str, *, group: str = "", sub: str = "", name: str = "", ns: str = "default"
) -> Request:
    return Request(verb=verb, api_group=group, resource=resource, subresource=sub, name=name, namespace=ns)


def url(verb: str, path: str) -> Request:
    return Request(verb=verb, resource_request=False, path=path)


def test_exact_and_wildcards() -> None:
    pods = rule(["get", "list"], groups=[""], resources=["pods"])
    assert rule_allows(res("get", "pods"), pods)
    assert not rule_allows(res("delete", "pods"), pods)
    assert not rule_allows(res("get", "pods", group="apps"), pods)
    assert not rule_allows(res("get", "pods", sub="log"), pods)  # a subresource is its own resource
    star = rule(["*"], groups=["*"], resources=["*"])
    assert rule_allows(res("escalate", "clusterroles", group="rbac.authorization.k8s.io"), star)
    assert rule_allows(res("get", "pods", sub="log"), star)
    assert not rule_allows(url("get", "/healthz"), star)  # resource rules never allow URLs


def test_subresource_forms() -> None:
    any_status = rule(["get"], groups=["*"], resources=["*/status"])
    assert rule_allows(res("get", "pods", sub="status"), any_status)
    assert rule_allows(res("get", "deployments", group="apps", sub="status"), any_status)
    assert not rule_allows(res("get", "pods"), any_status)
    assert not rule_allows(res("get", "pods", sub="log"), any_status)
    # `pods/*` has no special meaning upstream: it matches only a subresource literally named `*`.
    pods_star = rule(["get"], groups=[""], resources=["pods/*"])
    assert not rule_allows(res("get", "pods", sub="log"), pods_star)
    assert not rule_allows(res("get", "pods"), pods_star)
    exact = rule(["get"], groups=[""], resources=["pods/log"])
    assert rule_allows(res("get", "pods", sub="log"), exact)


def test_resource_names() -> None:
    named = rule(["get", "update", "list"], groups=["coordination.k8s.io"], resources=["leases"], names=["a"])
    assert rule_allows(res("get", "leases", group="coordination.k8s.io", name="a"), named)
    assert not rule_allows(res("get", "leases", group="coordination.k8s.io", name="b"), named)
    # a list or create carries no name: a rule with resourceNames does not allow it
    assert not rule_allows(res("list", "leases", group="coordination.k8s.io"), named)


def test_non_resource_urls() -> None:
    r = rule(["get"], urls=["/healthz", "/api/*", "/apis*"])
    assert rule_allows(url("get", "/healthz"), r)
    assert not rule_allows(url("get", "/healthz/ping"), r)
    assert rule_allows(url("get", "/api/v1"), r)
    assert rule_allows(url("get", "/api/"), r)
    assert not rule_allows(url("get", "/api"), r)
    assert rule_allows(url("get", "/apis"), r) and rule_allows(url("get", "/apisfoo"), r)
    assert not rule_allows(url("post", "/healthz"), r)
    assert rule_allows(url("delete", "/anything"), rule(["*"], urls=["*"]))
    assert not rule_allows(res("get", "pods"), rule(["*"], urls=["*"]))


def test_subjects() -> None:
    sa = UserInfo(
        "system:serviceaccount:ns1:robot", groups=("system:serviceaccounts", "system:serviceaccounts:ns1")
    )
    assert applies_to_user(sa, Subject("ServiceAccount", "robot", "ns1"), "")
    assert applies_to_user(sa, Subject("ServiceAccount", "robot"), "ns1")  # the binding's namespace
    assert not applies_to_user(sa, Subject("ServiceAccount", "robot"), "")  # none to default to
    assert not applies_to_user(sa, Subject("ServiceAccount", "robot", "ns2"), "ns1")
    assert applies_to_user(sa, Subject("Group", "system:serviceaccounts:ns1"), "ns2")
    assert not applies_to_user(sa, Subject("User", "robot"), "ns1")
    assert applies_to_user(UserInfo("bob"), Subject("User", "bob"), "")
    assert not applies_to_user(UserInfo("bob"), Subject("Unknown", "bob"), "")


def test_escalation_message_and_compaction() -> None:
    owner = [rule(["get"], groups=[""], resources=["pods"])]
    wanted = [rule(["get", "list", "delete"], groups=[""], resources=["pods", "secrets"])]
    ok, missing = covers(owner, wanted)
    assert not ok
    assert [compact_string(r) for r in compact_rules(missing)] == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete" "list"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["delete" "get" "list"]}',
    ]
    user = UserInfo("alice", groups=("devs", "system:authenticated"))
    assert escalation_message(user, missing) == (
        'user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not '
        'currently held:\n{APIGroups:[""], Resources:["pods"], Verbs:["delete" "list"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["delete" "get" "list"]}'
    )
    assert covers([rule(["*"], groups=["*"], resources=["*"])], wanted)[0]
    # a name-restricted grant does not cover an unrestricted one, but covers the same name
    named = [rule(["get"], groups=[""], resources=["pods"], names=["a"])]
    assert not covers(named, [rule(["get"], groups=[""], resources=["pods"])])[0]
    assert covers(owner, [rule(["get"], groups=[""], resources=["pods"], names=["a", "b"])])[0]
    assert covers([rule(["get"], urls=["/api/*"])], [rule(["get"], urls=["/api/v1", "/api/*"])])[0]
    assert not covers([rule(["get"], urls=["/api/*"])], [rule(["get"], urls=["/apis"])])[0]


# ---------------------------------------------------------------------------------------------
# Hypothesis: a reference model and soundness properties

VERBS = ["get", "list", "watch", "create", "update", "delete", "escalate", "*"]
GROUPS = ["", "apps", "rbac.authorization.k8s.io", "*"]
RESOURCES = [
    "pods",
    "pods/log",
    "pods/status",
    "deployments",
    "deployments/scale",
    "*",
    "*/status",
    "*/scale",
    "pods/*",
]
NAMES = ["a", "b", "*"]
URLS = ["/api", "/api/*", "/apis", "/healthz", "/healthz/*", "*", "/h*", "/api/v1"]
PATHS = ["/api", "/api/v1", "/api/", "/apis", "/healthz", "/healthz/ping", "/h", "/x", "*", "/api/*"]

rules_st = st.builds(
    PolicyRule,
    verbs=st.lists(st.sampled_from(VERBS), max_size=3).map(tuple),
    api_groups=st.lists(st.sampled_from(GROUPS), max_size=2).map(tuple),
    resources=st.lists(st.sampled_from(RESOURCES), max_size=3).map(tuple),
    resource_names=st.lists(st.sampled_from(NAMES), max_size=2).map(tuple),
    non_resource_urls=st.lists(st.sampled_from(URLS), max_size=2).map(tuple),
)

resource_requests = st.builds(
    lambda verb, group, resource, name: Request(
        verb=verb,
        api_group=group,
        resource=resource.split("/")[0],
        subresource=resource.split("/")[1] if "/" in resource else "",
        name=name,
    ),
    st.sampled_from([v for v in VERBS if v != "*"] + ["patch"]),
    st.sampled_from(["", "apps", "batch"]),
    st.sampled_from(["pods", "pods/log", "pods/status", "deployments", "deployments/scale", "secrets"]),
    st.sampled_from(["", "a", "b", "c"]),
)
url_requests = st.builds(
    lambda verb, path: Request(verb=verb, resource_request=False, path=path),
    st.sampled_from(["get", "post", "delete"]),
    st.sampled_from(PATHS),
)
requests_st = st.one_of(resource_requests, url_requests)


def reference_allows(req: Request, r: PolicyRule) -> bool:
    """RBAC's semantics stated directly: each field is a set of accepted values with `*` as
    the only wildcard, `*/<sub>` accepting any resource's <sub>, a URL ending in `*` a prefix."""
    if not ("*" in r.verbs or req.verb in r.verbs):
        return False
    if not req.resource_request:
        for u in r.non_resource_urls:
            stem = u
            while stem.endswith("*"):
                stem = stem[:-1]
            if u == "*" or u == req.path or (u != stem and req.path[: len(stem)] == stem):
                return True
        return False
    if not ("*" in r.api_groups or req.api_group in r.api_groups):
        return False
    wanted = req.resource + ("/" + req.subresource if req.subresource else "")
    resource_ok = "*" in r.resources or wanted in r.resources
    if req.subresource and "*/" + req.subresource in r.resources:
        resource_ok = True
    if not resource_ok:
        return False
    return not r.resource_names or req.name in r.resource_names


@settings(max_examples=300, deadline=None)
@given(rules_st, requests_st)
def test_matcher_agrees_with_reference(r: PolicyRule, req: Request) -> None:
    assert rule_allows(req, r) == reference_allows(req, r)


@settings(max_examples=200, deadline=None)
@given(rules_st, requests_st)
def test_no_allow_outside_the_rule(r: PolicyRule, req: Request) -> None:
    if not rule_allows(req, r):
        return
    assert "*" in r.verbs or req.verb in r.verbs
    if req.resource_request:
        assert r.resources and r.api_groups
        assert not r.resource_names or req.name in r.resource_names  # names never widen
        if req.subresource:
            assert {"*", f"{req.resource}/{req.subresource}", f"*/{req.subresource}"} & set(r.resources)
        else:
            assert {"*", req.resource} & set(r.resources)
    else:
        assert r.non_resource_urls


@settings(max_examples=200, deadline=None)
@given(
    st.lists(rules_st, max_size=3),
    st.lists(rules_st, max_size=3),
    st.lists(requests_st, min_size=1, max_size=8),
)
def test_covers_is_sound(owner: list[PolicyRule], servant: list[PolicyRule], reqs: list[Request]) -> None:
    """If the escalation check lets a user grant `servant`, everything `servant` allows the
    user could already do: no grant beyond what the granter holds."""
    ok, missing = covers(owner, servant)
    if ok:
        for req in reqs:
            if rules_allow(req, servant):
                assert rules_allow(req, owner), (req, owner, servant)
    else:
        assert missing


subjects_st = st.builds(
    Subject,
    kind=st.sampled_from(["User", "Group", "ServiceAccount", "Other"]),
    name=st.sampled_from(["alice", "robot", "devs", "system:serviceaccounts:ns1"]),
    namespace=st.sampled_from(["", "ns1", "ns2"]),
)
bindings_st = st.builds(
    Binding,
    name=st.sampled_from(["b1", "b2", "b3"]),
    namespace=st.sampled_from(["", "ns1", "ns2"]),
    role_ref=st.builds(
        RoleRef,
        st.just("rbac.authorization.k8s.io"),
        st.sampled_from(["Role", "ClusterRole"]),
        st.sampled_from(["r1", "r2", "missing"]),
    ),
    subjects=st.lists(subjects_st, max_size=3).map(tuple),
)
users_st = st.sampled_from(
    [
        UserInfo("alice", groups=("devs",)),
        UserInfo(
            "system:serviceaccount:ns1:robot", groups=("system:serviceaccounts", "system:serviceaccounts:ns1")
        ),
        UserInfo("mallory"),
    ]
)


def reference_subject(user: UserInfo, subject: Subject, binding_namespace: str) -> bool:
    if subject.kind == "User":
        return subject.name == user.name
    if subject.kind == "Group":
        return subject.name in user.groups
    if subject.kind == "ServiceAccount":
        namespace = subject.namespace or binding_namespace
        return bool(namespace) and user.name == f"system:serviceaccount:{namespace}:{subject.name}"
    return False


@settings(max_examples=200, deadline=None)
@given(
    st.lists(rules_st, max_size=2),
    st.lists(rules_st, max_size=2),
    st.lists(bindings_st, max_size=4),
    users_st,
    resource_requests,
    st.sampled_from(["", "ns1", "ns2"]),
)
def test_resolver_grants_only_through_matching_bindings(
    r1: list[PolicyRule], r2: list[PolicyRule], bindings: list[Binding], user: UserInfo, req: Request, ns: str
) -> None:
    """An allow needs a binding whose subject is the user, in the request's namespace or
    cluster-wide, to a role that exists there and holds a rule allowing the request."""
    req = Request(req.verb, True, req.api_group, req.resource, req.subresource, req.name, ns)
    roles = [Role("r1", "ns1", tuple(r1), {}), Role("r2", "ns2", tuple(r2), {})]
    cluster_roles = [Role("r1", "", tuple(r2), {}), Role("r2", "", tuple(r1), {})]
    snapshot = PolicySnapshot.of(
        roles, cluster_roles, [b for b in bindings if b.namespace], [b for b in bindings if not b.namespace]
    )
    allowed = RuleResolver(snapshot).authorize(user, req).allowed

    def grants(b: Binding) -> bool:
        if b.namespace not in ("", ns):
            return False
        if not any(reference_subject(user, s, b.namespace) for s in b.subjects):
            return False
        if b.role_ref.kind == "ClusterRole":
            held = {"r1": r2, "r2": r1}.get(b.role_ref.name, [])
        elif b.namespace:
            held = {("ns1", "r1"): r1, ("ns2", "r2"): r2}.get((b.namespace, b.role_ref.name), [])
        else:
            held = []  # a ClusterRoleBinding cannot reference a Role
        return any(reference_allows(req, r) for r in held)

    assert allowed == any(grants(b) for b in bindings)
