"""The pure mutating plugins: DefaultTolerationSeconds, ServiceAccount, Priority's resolution."""

from __future__ import annotations

import re
from typing import Any, cast

import pytest

from controlplane.api import errors
from controlplane.api.resources import default_registry
from controlplane.apiserver.admission import Attributes
from controlplane.apiserver.admission.default_toleration_seconds import (
    DefaultTolerationSeconds,
    add_default_tolerations,
    tolerates_no_execute,
)
from controlplane.apiserver.admission.priority import (
    default_priority_class,
    resolve_pod_priority,
    system_priority_class_objects,
)
from controlplane.apiserver.admission.service_account import ServiceAccount
from controlplane.apiserver.context import ServerContext

REGISTRY = default_registry()
PODS = REGISTRY.get("", "v1", "pods")
assert PODS is not None
CREATE = Attributes(PODS, "CREATE", "default", "p")
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def _defaults(seconds_nr: int = 300, seconds_ur: int = 300) -> list[dict[str, Any]]:
    return [
        {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds_nr},
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds_ur},
    ]


def test_default_tolerations_are_added_with_the_configured_seconds() -> None:
    spec: dict[str, Any] = {}
    add_default_tolerations(spec, 300, 300)
    assert spec["tolerations"] == _defaults()
    spec = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule"}]}
    add_default_tolerations(spec, 30, 60)
    assert spec["tolerations"][1:] == _defaults(30, 60)


@pytest.mark.parametrize(
    ("toleration", "tolerates"),
    [
        ({"operator": "Exists"}, {NOT_READY, UNREACHABLE}),  # empty key and effect: everything
        ({"operator": "Exists", "effect": "NoExecute"}, {NOT_READY, UNREACHABLE}),
        ({"operator": "Exists", "effect": "NoSchedule"}, set()),
        ({"key": NOT_READY, "operator": "Exists"}, {NOT_READY}),
        (
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
            {UNREACHABLE},
        ),
        ({"key": NOT_READY, "operator": "Equal", "value": "", "effect": "NoExecute"}, {NOT_READY}),
    ],
)
def test_existing_tolerations_suppress_the_defaults_as_upstream(
    toleration: dict[str, Any], tolerates: set[str]
) -> None:
    for key in (NOT_READY, UNREACHABLE):
        assert tolerates_no_execute([toleration], key) is (key in tolerates)
    spec = {"tolerations": [toleration]}
    add_default_tolerations(spec, 300, 300)
    added = {t["key"] for t in spec["tolerations"][1:]}
    assert added == {NOT_READY, UNREACHABLE} - tolerates


async def test_default_tolerations_plugin_touches_only_pods() -> None:
    plugin = DefaultTolerationSeconds(10, 20)
    ctx: ServerContext = None  # type: ignore[assignment]  # the plugin reads nothing from it
    pod: dict[str, Any] = {"spec": {"containers": []}}
    await plugin.admit(ctx, CREATE, pod, None)
    assert pod["spec"]["tolerations"] == _defaults(10, 20)
    deployments = REGISTRY.get("apps", "v1", "deployments")
    assert deployments is not None
    other: dict[str, Any] = {"spec": {}}
    await plugin.admit(ctx, Attributes(deployments, "CREATE", "default", "d"), other, None)
    assert other == {"spec": {}}


class _Accounts:
    """The two things the ServiceAccount plugin reads from its context: the registry, and the
    store's shared point reads (of ServiceAccounts), counted."""

    def __init__(self, *accounts: dict[str, Any]) -> None:
        self.registry = REGISTRY
        self.store = self
        self.accounts = {
            (a["metadata"].get("namespace", "default"), a["metadata"]["name"]): a for a in accounts
        }
        self.lookups = 0

    async def get_shared(self, info: Any, namespace: str, name: str) -> dict[str, Any] | None:
        assert info.plural == "serviceaccounts"
        self.lookups += 1
        return self.accounts.get((namespace, name))


def _account(name: str = "default", **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}, **fields}


def _context(*accounts: dict[str, Any]) -> tuple[ServerContext, _Accounts]:
    fake = _Accounts(*accounts)
    return cast("ServerContext", fake), fake


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec}}


async def test_a_pod_runs_as_default_and_mounts_its_api_credentials() -> None:
    ctx, _ = _context(_account())
    pod = _pod(initContainers=[{"name": "init", "image": "busybox"}])
    await ServiceAccount().admit(ctx, CREATE, pod, None)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    [volume] = spec["volumes"]
    assert re.fullmatch(r"kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}", volume["name"])
    assert volume["projected"] == {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }
    mount = {
        "name": volume["name"],
        "readOnly": True,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    }
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["initContainers"][0]["volumeMounts"] == [mount]


async def test_automount_follows_the_pod_then_the_account() -> None:
    ctx, _ = _context(_account(automountServiceAccountToken=False), _account("builder"))
    off = _pod()
    await ServiceAccount().admit(ctx, CREATE, off, None)
    assert "volumes" not in off["spec"] and "volumeMounts" not in off["spec"]["containers"][0]
    # The pod's own setting wins over the account's.
    on = _pod(automountServiceAccountToken=True)
    await ServiceAccount().admit(ctx, CREATE, on, None)
    assert on["spec"]["volumes"][0]["name"].startswith("kube-api-access-")
    declined = _pod(serviceAccount="builder", automountServiceAccountToken=False)
    await ServiceAccount().admit(ctx, CREATE, declined, None)
    assert declined["spec"]["serviceAccountName"] == "builder" and "volumes" not in declined["spec"]


async def test_own_mounts_at_the_token_path_and_an_existing_volume_are_kept() -> None:
    ctx, _ = _context(_account())
    own = {"name": "mine", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    pod = _pod(
        containers=[
            {"name": "a", "image": "nginx", "volumeMounts": [own]},
            {"name": "b", "image": "nginx"},
        ],
        volumes=[
            {"name": "kube-api-access-given", "projected": {"sources": []}},
            {"name": "mine", "emptyDir": {}},
        ],
    )
    await ServiceAccount().admit(ctx, CREATE, pod, None)
    a, b = pod["spec"]["containers"]
    assert a["volumeMounts"] == [own]
    assert b["volumeMounts"][0]["name"] == "kube-api-access-given"
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["kube-api-access-given", "mine"]
    # Nobody needs the volume: none is added.
    covered = _pod(containers=[{"name": "a", "image": "nginx", "volumeMounts": [own]}])
    await ServiceAccount().admit(ctx, CREATE, covered, None)
    assert "volumes" not in covered["spec"]


async def test_image_pull_secrets_come_from_the_account_unless_the_pod_has_some() -> None:
    ctx, _ = _context(_account(imagePullSecrets=[{"name": "registry"}]))
    pod = _pod()
    await ServiceAccount().admit(ctx, CREATE, pod, None)
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    own = _pod(imagePullSecrets=[{"name": "mine"}])
    await ServiceAccount().admit(ctx, CREATE, own, None)
    assert own["spec"]["imagePullSecrets"] == [{"name": "mine"}]


async def test_a_missing_account_refuses_the_pod() -> None:
    ctx, fake = _context()
    with pytest.raises(errors.Forbidden) as refused:
        await ServiceAccount().admit(ctx, CREATE, _pod(serviceAccountName="builder"), None)
    assert refused.value.message == (
        'pods "p" is forbidden: error looking up service account default/builder: serviceaccount "builder" not found'
    )
    assert fake.lookups == 1
    # `default` is looked for again: the controller makes it moments after the namespace.
    with pytest.raises(errors.Forbidden, match='serviceaccount "default" not found'):
        await ServiceAccount(retry_interval=(0.0, 0.0)).admit(ctx, CREATE, _pod(), None)
    assert fake.lookups == 1 + 10


async def test_mirror_pods_and_updates_are_left_alone_and_mirror_pods_get_no_credentials() -> None:
    ctx, fake = _context(_account())
    plugin = ServiceAccount()
    mirror: dict[str, Any] = {"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}, "spec": {}}
    await plugin.admit(ctx, CREATE, mirror, None)
    assert mirror["spec"] == {} and fake.lookups == 0
    await plugin.validate(ctx, CREATE, mirror, None, cast("Any", None))
    for spec, reason in [
        ({"serviceAccountName": "default"}, "a mirror pod may not reference service accounts"),
        (
            {"volumes": [{"name": "s", "secret": {"secretName": "x"}}]},
            "a mirror pod may not reference secrets",
        ),
        (
            {
                "containers": [
                    {"name": "c", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "x"}}}]}
                ]
            },
            "a mirror pod may not reference secrets",
        ),
        (
            {"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]},
            "a mirror pod may not use ServiceAccountToken volume projections",
        ),
    ]:
        bad = {"metadata": mirror["metadata"], "spec": spec}
        with pytest.raises(errors.Forbidden) as refused:
            await plugin.validate(ctx, CREATE, bad, None, cast("Any", None))
        assert refused.value.message == f'pods "p" is forbidden: {reason}'
    update: dict[str, Any] = {"metadata": {}, "spec": {}}
    await plugin.admit(ctx, Attributes(PODS, "UPDATE", "default", "p"), update, _pod())
    assert update == {"metadata": {}, "spec": {}}


def _pc(name: str, value: int, *, default: bool = False, policy: str | None = None) -> dict[str, Any]:
    pc: dict[str, Any] = {"metadata": {"name": name}, "value": value, "globalDefault": default}
    if policy:
        pc["preemptionPolicy"] = policy
    return pc


def test_priority_resolution() -> None:
    spec: dict[str, Any] = {}
    resolve_pod_priority(CREATE, spec, None, None)
    assert spec == {"priority": 0, "preemptionPolicy": "PreemptLowerPriority"}

    spec = {}
    resolve_pod_priority(CREATE, spec, None, _pc("base", 100, default=True, policy="Never"))
    assert spec == {"priorityClassName": "base", "priority": 100, "preemptionPolicy": "Never"}

    spec = {"priorityClassName": "high", "priority": 1000}
    resolve_pod_priority(CREATE, spec, _pc("high", 1000), None)
    assert spec["priority"] == 1000 and spec["preemptionPolicy"] == "PreemptLowerPriority"


def test_priority_that_disagrees_with_the_class_is_forbidden() -> None:
    with pytest.raises(errors.Forbidden) as info:
        resolve_pod_priority(CREATE, {"priorityClassName": "high", "priority": 5}, _pc("high", 1000), None)
    assert info.value.message == (
        'pods "p" is forbidden: the integer value of priority (5) must not be provided in pod spec; '
        "priority admission controller computed 1000 from the given PriorityClass name"
    )
    assert info.value.to_status()["details"] == {"name": "p", "kind": "pods"}
    with pytest.raises(errors.Forbidden, match=r"the string value of PreemptionPolicy \(Never\)"):
        resolve_pod_priority(CREATE, {"preemptionPolicy": "Never"}, None, None)


def test_the_lowest_global_default_wins_a_race() -> None:
    classes = [_pc("a", 10), _pc("b", 500, default=True), _pc("c", 20, default=True)]
    found = default_priority_class(classes)
    assert found is not None and found["metadata"]["name"] == "c"
    assert default_priority_class([_pc("a", 10)]) is None


def test_system_classes_are_upstreams() -> None:
    objects = {pc["metadata"]["name"]: pc for pc in system_priority_class_objects()}
    assert objects["system-node-critical"]["value"] == 2000001000
    assert objects["system-cluster-critical"]["value"] == 2000000000
    assert all(pc["preemptionPolicy"] == "PreemptLowerPriority" for pc in objects.values())
    # The bootstrap objects are fresh copies each time (the create path mutates them).
    first = system_priority_class_objects()
    first[0]["value"] = 1
    assert system_priority_class_objects()[0]["value"] == 2000001000
