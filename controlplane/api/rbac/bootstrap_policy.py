"""The default ClusterRoles and ClusterRoleBindings every cluster starts with, as upstream's
bootstrappolicy (policy.go and controller_policy.go, Kubernetes 1.33) defines them.

The rule data is transcribed rule for rule (each list sorted, as upstream's rule builder sorts
it); the roles carry `kubernetes.io/bootstrapping=rbac-defaults` and the autoupdate annotation
so that start-up reconciliation keeps them complete. `admin`, `edit` and `view` are aggregated
from the `system:aggregate-to-*` roles by their labels, as upstream.
"""

from __future__ import annotations

from typing import Any

from controlplane.api.rbac.rules import PolicyRule, rule, rule_to_dict

__all__ = [
    "AUTOUPDATE_ANNOTATION",
    "BOOTSTRAPPING_LABEL",
    "CONTROLLER_ROLE_PREFIX",
    "cluster_role_binding_objects",
    "cluster_role_bindings",
    "cluster_role_objects",
    "cluster_roles",
    "controller_role_bindings",
    "controller_roles",
    "kube_controller_manager_controller_bindings",
    "namespace_role_bindings",
    "namespace_roles",
    "pinnace_controller_roles",
    "role_binding_objects",
    "role_objects",
]

AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
RBAC_GROUP = "rbac.authorization.k8s.io"
CONTROLLER_ROLE_PREFIX = "system:controller:"

READ_WRITE = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
READ = ("get", "list", "watch")
READ_UPDATE = ("get", "list", "watch", "update", "patch")
EDIT = ("create", "delete", "deletecollection", "patch", "update")

LEGACY = ""
APPS = "apps"
AUTHENTICATION = "authentication.k8s.io"
AUTHORIZATION = "authorization.k8s.io"
AUTOSCALING = "autoscaling"
BATCH = "batch"
CERTIFICATES = "certificates.k8s.io"
COORDINATION = "coordination.k8s.io"
DISCOVERY = "discovery.k8s.io"
EVENTS = "events.k8s.io"
EXTENSIONS = "extensions"
NETWORKING = "networking.k8s.io"
NODE = "node.k8s.io"
POLICY = "policy"
STORAGE = "storage.k8s.io"


def _r(
    verbs: tuple[str, ...] | str, groups: tuple[str, ...] | str, *resources: str, names: tuple[str, ...] = ()
) -> PolicyRule:
    verb_list = (verbs,) if isinstance(verbs, str) else verbs
    group_list = (groups,) if isinstance(groups, str) else groups
    return rule(verb_list, groups=group_list, resources=resources, names=names)


def _urls(verbs: tuple[str, ...] | str, *urls: str) -> PolicyRule:
    return rule((verbs,) if isinstance(verbs, str) else verbs, urls=urls)


def _events() -> PolicyRule:
    return _r(("create", "update", "patch"), (LEGACY, EVENTS), "events")


# ---------------------------------------------------------------------------------------------
# policy.go: ClusterRoles()


def _aggregate_to_view() -> list[PolicyRule]:
    return [
        _r(
            READ,
            LEGACY,
            "pods",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/status",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "configmaps",
        ),
        _r(
            READ,
            LEGACY,
            "limitranges",
            "resourcequotas",
            "bindings",
            "events",
            "pods/status",
            "resourcequotas/status",
            "namespaces/status",
            "replicationcontrollers/status",
            "pods/log",
        ),
        _r(READ, LEGACY, "namespaces"),
        _r(READ, DISCOVERY, "endpointslices"),
        _r(
            READ,
            APPS,
            "controllerrevisions",
            "statefulsets",
            "statefulsets/status",
            "statefulsets/scale",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/status",
            "deployments/scale",
            "replicasets",
            "replicasets/status",
            "replicasets/scale",
        ),
        _r(READ, AUTOSCALING, "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
        _r(READ, BATCH, "jobs", "cronjobs", "cronjobs/status", "jobs/status"),
        _r(
            READ,
            EXTENSIONS,
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "ingresses",
            "ingresses/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "replicationcontrollers/scale",
            "networkpolicies",
        ),
        _r(READ, POLICY, "poddisruptionbudgets", "poddisruptionbudgets/status"),
        _r(READ, NETWORKING, "networkpolicies", "ingresses", "ingresses/status"),
    ]


def _aggregate_to_edit() -> list[PolicyRule]:
    return [
        _r(
            READ,
            LEGACY,
            "pods/attach",
            "pods/proxy",
            "pods/exec",
            "pods/portforward",
            "secrets",
            "services/proxy",
        ),
        _r("impersonate", LEGACY, "serviceaccounts"),
        _r(EDIT, LEGACY, "pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"),
        _r("create", LEGACY, "pods/eviction"),
        _r(
            EDIT,
            LEGACY,
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/proxy",
            "persistentvolumeclaims",
            "configmaps",
            "secrets",
            "events",
        ),
        _r("create", LEGACY, "serviceaccounts/token"),
        _r(
            EDIT,
            APPS,
            "statefulsets",
            "statefulsets/scale",
            "daemonsets",
            "deployments",
            "deployments/scale",
            "deployments/rollback",
            "replicasets",
            "replicasets/scale",
        ),
        _r(EDIT, AUTOSCALING, "horizontalpodautoscalers"),
        _r(EDIT, BATCH, "jobs", "cronjobs"),
        _r(
            EDIT,
            EXTENSIONS,
            "daemonsets",
            "deployments",
            "deployments/scale",
            "deployments/rollback",
            "ingresses",
            "replicasets",
            "replicasets/scale",
            "replicationcontrollers/scale",
            "networkpolicies",
        ),
        _r(EDIT, POLICY, "poddisruptionbudgets"),
        _r(EDIT, NETWORKING, "networkpolicies", "ingresses"),
        _r(READ_WRITE, COORDINATION, "leases"),
    ]


def _aggregate_to_admin() -> list[PolicyRule]:
    return [
        _r("create", AUTHORIZATION, "localsubjectaccessreviews"),
        _r(READ_WRITE, RBAC_GROUP, "roles", "rolebindings"),
    ]


def _node() -> list[PolicyRule]:
    return [
        _r("create", AUTHENTICATION, "tokenreviews"),
        _r("create", AUTHORIZATION, "subjectaccessreviews", "localsubjectaccessreviews"),
        _r(READ, LEGACY, "services"),
        _r(("create", "get", "list", "watch"), LEGACY, "nodes"),
        _r(("update", "patch"), LEGACY, "nodes/status"),
        _r(("update", "patch"), LEGACY, "nodes"),
        _r(("create", "update", "patch"), LEGACY, "events"),
        _r(READ, LEGACY, "pods"),
        _r(("create", "delete"), LEGACY, "pods"),
        _r(("update", "patch"), LEGACY, "pods/status"),
        _r("create", LEGACY, "pods/eviction"),
        _r(READ, LEGACY, "secrets", "configmaps"),
        _r("get", LEGACY, "persistentvolumeclaims", "persistentvolumes"),
        _r("get", LEGACY, "endpoints"),
        _r(("create", "get", "list", "watch"), CERTIFICATES, "certificatesigningrequests"),
        _r(("get", "create", "update", "patch", "delete"), COORDINATION, "leases"),
        _r("get", STORAGE, "volumeattachments"),
        _r("create", LEGACY, "serviceaccounts/token"),
        _r(("get", "update", "patch"), LEGACY, "persistentvolumeclaims/status"),
        _r(READ, STORAGE, "csidrivers"),
        _r(("get", "create", "update", "patch", "delete"), STORAGE, "csinodes"),
        _r(READ, NODE, "runtimeclasses"),
    ]


def _kube_scheduler() -> list[PolicyRule]:
    return [
        _events(),
        _r("create", COORDINATION, "leases"),
        _r(("get", "update"), COORDINATION, "leases", names=("kube-scheduler",)),
        _r(READ, LEGACY, "nodes"),
        _r(("get", "list", "watch", "delete"), LEGACY, "pods"),
        _r("create", LEGACY, "pods/binding", "bindings"),
        _r(("patch", "update"), LEGACY, "pods/status"),
        _r(READ, LEGACY, "replicationcontrollers", "services"),
        _r(READ, (APPS, EXTENSIONS), "replicasets"),
        _r(READ, APPS, "statefulsets"),
        _r(READ, POLICY, "poddisruptionbudgets"),
        _r(READ, LEGACY, "persistentvolumeclaims", "persistentvolumes"),
        _r("create", AUTHENTICATION, "tokenreviews"),
        _r("create", AUTHORIZATION, "subjectaccessreviews"),
        _r(READ, STORAGE, "csinodes"),
        _r(READ, LEGACY, "namespaces"),
        _r(READ, STORAGE, "csidrivers"),
        _r(READ, STORAGE, "csistoragecapacities"),
    ]


def _kube_controller_manager() -> list[PolicyRule]:
    return [
        _events(),
        _r("create", COORDINATION, "leases"),
        _r(("get", "update"), COORDINATION, "leases", names=("kube-controller-manager",)),
        _r("create", LEGACY, "secrets", "serviceaccounts"),
        _r("delete", LEGACY, "secrets"),
        _r("get", LEGACY, "namespaces", "secrets", "serviceaccounts", "configmaps"),
        _r("update", LEGACY, "secrets", "serviceaccounts"),
        _r("create", AUTHENTICATION, "tokenreviews"),
        _r("create", AUTHORIZATION, "subjectaccessreviews"),
        _r(("list", "watch"), "*", "*"),
        _r("create", LEGACY, "serviceaccounts/token"),
    ]


def _cloud_controller_manager() -> list[PolicyRule]:
    """Not in kube-apiserver's bootstrap policy: the role the cloud-provider project ships for
    cloud-controller-manager (its nodes, routes and service load balancer controllers)."""
    return [
        _r(("create", "patch", "update"), LEGACY, "events"),
        _r("*", LEGACY, "nodes"),
        _r("patch", LEGACY, "nodes/status"),
        _r(("list", "patch", "update", "watch"), LEGACY, "services"),
        _r(("list", "patch", "update", "watch"), LEGACY, "services/status"),
        _r(("create", "get", "list", "watch", "update"), LEGACY, "serviceaccounts"),
        _r(("get", "list", "update", "watch"), LEGACY, "persistentvolumes"),
        _r(("create", "get", "list", "watch", "update"), LEGACY, "endpoints"),
        _r(READ, LEGACY, "secrets"),
        _r(("create", "get", "list", "watch", "update"), COORDINATION, "leases"),
        _r("create", LEGACY, "serviceaccounts/token"),
    ]


PROVISIONER_USER = "system:pinnace-provisioner"
PROVISIONING_GROUP = "infra.pinnace.dev"


def _pinnace_provisioner() -> list[PolicyRule]:
    """Pinnace's NodePool/Machine operator (ccm.provisioning): its own resources, the Nodes it
    labels, drains and deletes, pods to evict, and the per-Machine bootstrap RBAC (ClusterRoles
    it may create because it holds their one rule itself). Bootstrap-token Secrets and its Lease
    are granted in kube-system only (namespace_roles)."""
    return [
        # patch: the autoscaler sets spec.replicas of autoscaling pools.
        _r((*READ, "patch"), PROVISIONING_GROUP, "nodepools"),
        _r(("get", "patch", "update"), PROVISIONING_GROUP, "nodepools/status"),
        _r((*READ, "create", "patch", "update", "delete"), PROVISIONING_GROUP, "machines"),
        _r(("get", "patch", "update"), PROVISIONING_GROUP, "machines/status"),
        _r((*READ, "patch", "delete"), LEGACY, "nodes"),
        _r(READ, LEGACY, "pods"),
        _r("create", LEGACY, "pods/eviction"),
        _r(("create", "get", "patch", "delete"), RBAC_GROUP, "clusterroles", "clusterrolebindings"),
        _r(READ, "apiextensions.k8s.io", "customresourcedefinitions"),
        _events(),
    ]


def _approver(signer: str) -> list[PolicyRule]:
    return [_r("approve", CERTIFICATES, "signers", names=(signer,))]


def cluster_roles() -> list[tuple[str, list[PolicyRule], dict[str, str], list[dict[str, str]] | None]]:
    """(name, rules, extra labels, aggregation selectors' matchLabels or None), upstream's order."""
    agg = "rbac.authorization.k8s.io/aggregate-to-"
    return [
        ("cluster-admin", [_r("*", "*", "*"), _urls("*", "*")], {}, None),
        (
            "system:discovery",
            [
                _urls(
                    "get",
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                )
            ],
            {},
            None,
        ),
        (
            "system:monitoring",
            [
                _urls(
                    "get",
                    "/metrics",
                    "/metrics/slis",
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/livez/*",
                    "/readyz/*",
                    "/healthz/*",
                )
            ],
            {},
            None,
        ),
        (
            "system:basic-user",
            [
                _r("create", AUTHORIZATION, "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
                _r("create", AUTHENTICATION, "selfsubjectreviews"),
            ],
            {},
            None,
        ),
        (
            "system:public-info-viewer",
            [_urls("get", "/livez", "/readyz", "/healthz", "/version", "/version/")],
            {},
            None,
        ),
        ("admin", [], {}, [{f"{agg}admin": "true"}]),
        ("edit", [], {f"{agg}admin": "true"}, [{f"{agg}edit": "true"}]),
        ("view", [], {f"{agg}edit": "true"}, [{f"{agg}view": "true"}]),
        ("system:aggregate-to-admin", _aggregate_to_admin(), {f"{agg}admin": "true"}, None),
        ("system:aggregate-to-edit", _aggregate_to_edit(), {f"{agg}edit": "true"}, None),
        ("system:aggregate-to-view", _aggregate_to_view(), {f"{agg}view": "true"}, None),
        (
            "system:heapster",
            [_r(READ, LEGACY, "events", "pods", "nodes", "namespaces"), _r(READ, EXTENSIONS, "deployments")],
            {},
            None,
        ),
        ("system:node", _node(), {}, None),
        (
            "system:node-problem-detector",
            [_r("get", LEGACY, "nodes"), _r("patch", LEGACY, "nodes/status"), _events()],
            {},
            None,
        ),
        (
            "system:kubelet-api-admin",
            [
                _r(READ, LEGACY, "nodes"),
                _r("proxy", LEGACY, "nodes"),
                _r("*", LEGACY, "nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log"),
            ],
            {},
            None,
        ),
        (
            "system:node-bootstrapper",
            [_r(("create", "get", "list", "watch"), CERTIFICATES, "certificatesigningrequests")],
            {},
            None,
        ),
        (
            "system:auth-delegator",
            [
                _r("create", AUTHENTICATION, "tokenreviews"),
                _r("create", AUTHORIZATION, "subjectaccessreviews"),
            ],
            {},
            None,
        ),
        ("system:kube-aggregator", [_r(READ, LEGACY, "services", "endpoints")], {}, None),
        ("system:kube-controller-manager", _kube_controller_manager(), {}, None),
        ("system:kube-dns", [_r(("list", "watch"), LEGACY, "endpoints", "services")], {}, None),
        (
            "system:persistent-volume-provisioner",
            [
                _r(("get", "list", "watch", "create", "delete"), LEGACY, "persistentvolumes"),
                _r(("get", "list", "watch", "update"), LEGACY, "persistentvolumeclaims"),
                _r(READ, STORAGE, "storageclasses"),
                _r("watch", LEGACY, "events"),
                _events(),
            ],
            {},
            None,
        ),
        (
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            [_r("create", CERTIFICATES, "certificatesigningrequests/nodeclient")],
            {},
            None,
        ),
        (
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            [_r("create", CERTIFICATES, "certificatesigningrequests/selfnodeclient")],
            {},
            None,
        ),
        (
            "system:volume-scheduler",
            [
                _r(READ_UPDATE, LEGACY, "persistentvolumes"),
                _r(READ, STORAGE, "storageclasses"),
                _r(READ_UPDATE, LEGACY, "persistentvolumeclaims"),
            ],
            {},
            None,
        ),
        (
            "system:certificates.k8s.io:legacy-unknown-approver",
            _approver("kubernetes.io/legacy-unknown"),
            {},
            None,
        ),
        (
            "system:certificates.k8s.io:kubelet-serving-approver",
            _approver("kubernetes.io/kubelet-serving"),
            {},
            None,
        ),
        (
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            _approver("kubernetes.io/kube-apiserver-client"),
            {},
            None,
        ),
        (
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            _approver("kubernetes.io/kube-apiserver-client-kubelet"),
            {},
            None,
        ),
        (
            "system:service-account-issuer-discovery",
            [_urls("get", "/.well-known/openid-configuration", "/openid/v1/jwks")],
            {},
            None,
        ),
        (
            "system:node-proxier",
            [
                _r(("list", "watch"), LEGACY, "services", "endpoints"),
                _r(READ, LEGACY, "nodes"),
                _events(),
                _r(("list", "watch"), DISCOVERY, "endpointslices"),
            ],
            {},
            None,
        ),
        # kube-proxy's reads without its `nodes` rule: bound to system:nodes for kube-proxy units
        # running on the kubelet's certificate; a node's own Node stays the Node authorizer's call.
        (
            "pinnace:node-proxier",
            [
                _r(("list", "watch"), LEGACY, "services", "endpoints"),
                _events(),
                _r(("list", "watch"), DISCOVERY, "endpointslices"),
            ],
            {},
            None,
        ),
        ("system:kube-scheduler", _kube_scheduler(), {}, None),
        # Pinnace's scheduler watches PriorityClasses (upstream's reads only pod.spec.priority):
        # the one grant beyond upstream's role, kept in a role of its own.
        ("system:pinnace:kube-scheduler", [_r(READ, "scheduling.k8s.io", "priorityclasses")], {}, None),
        ("system:cloud-controller-manager", _cloud_controller_manager(), {}, None),
        (PROVISIONER_USER, _pinnace_provisioner(), {}, None),
    ]


# ---------------------------------------------------------------------------------------------
# controller_policy.go: the roles of the kube-controller-manager's controllers


def controller_roles() -> dict[str, list[PolicyRule]]:
    """`system:controller:<name>` -> rules, for the controllers Pinnace runs (plus the
    clusterrole-aggregation controller, whose work the API server does in process here)."""
    return {
        "clusterrole-aggregation-controller": [
            _r(("escalate", "get", "list", "watch", "update", "patch"), RBAC_GROUP, "clusterroles"),
        ],
        "certificate-controller": [
            _r(("get", "list", "watch", "delete"), CERTIFICATES, "certificatesigningrequests"),
            _r(
                "update",
                CERTIFICATES,
                "certificatesigningrequests/status",
                "certificatesigningrequests/approval",
            ),
            _r("approve", CERTIFICATES, "signers", names=("kubernetes.io/kube-apiserver-client-kubelet",)),
            _r(
                "sign",
                CERTIFICATES,
                "signers",
                names=(
                    "kubernetes.io/legacy-unknown",
                    "kubernetes.io/kube-apiserver-client",
                    "kubernetes.io/kube-apiserver-client-kubelet",
                    "kubernetes.io/kubelet-serving",
                ),
            ),
            _r("create", AUTHORIZATION, "subjectaccessreviews"),
            _events(),
        ],
        "cronjob-controller": [
            _r(("get", "list", "watch", "update"), BATCH, "cronjobs"),
            _r(("get", "list", "watch", "create", "update", "delete", "patch"), BATCH, "jobs"),
            _r("update", BATCH, "cronjobs/status"),
            _r("update", BATCH, "cronjobs/finalizers"),
            _r(("list", "watch", "delete"), LEGACY, "pods"),
            _events(),
        ],
        "daemon-set-controller": [
            _r(READ, (EXTENSIONS, APPS), "daemonsets"),
            _r("update", (EXTENSIONS, APPS), "daemonsets/status"),
            _r("update", (EXTENSIONS, APPS), "daemonsets/finalizers"),
            _r(("list", "watch"), LEGACY, "nodes"),
            _r(("list", "watch", "create", "delete", "patch"), LEGACY, "pods"),
            _r("create", LEGACY, "pods/binding"),
            _r(("get", "list", "watch", "create", "delete", "update", "patch"), APPS, "controllerrevisions"),
            _events(),
        ],
        "deployment-controller": [
            _r(("get", "list", "watch", "update"), (EXTENSIONS, APPS), "deployments"),
            _r("update", (EXTENSIONS, APPS), "deployments/status"),
            _r("update", (EXTENSIONS, APPS), "deployments/finalizers"),
            _r(
                ("get", "list", "watch", "create", "update", "patch", "delete"),
                (APPS, EXTENSIONS),
                "replicasets",
            ),
            _r(("get", "list", "watch", "update"), LEGACY, "pods"),
            _events(),
        ],
        "disruption-controller": [
            _r(READ, (EXTENSIONS, APPS), "deployments"),
            _r(READ, (APPS, EXTENSIONS), "replicasets"),
            _r(READ, LEGACY, "replicationcontrollers"),
            _r(READ, POLICY, "poddisruptionbudgets"),
            _r(READ, APPS, "statefulsets"),
            _r("update", POLICY, "poddisruptionbudgets/status"),
            _r(("patch", "update"), LEGACY, "pods/status"),
            _r("get", "*", "*/scale"),
            _events(),
        ],
        "endpoint-controller": [
            _r(READ, LEGACY, "services", "pods"),
            _r(("get", "list", "watch", "create", "update", "delete"), LEGACY, "endpoints"),
            _r("create", LEGACY, "endpoints/restricted"),
            _events(),
        ],
        "endpointslice-controller": [
            _r(READ, LEGACY, "services", "pods", "nodes"),
            _r("update", LEGACY, "services/finalizers"),
            _r(("get", "list", "watch", "create", "update", "delete"), DISCOVERY, "endpointslices"),
            _events(),
        ],
        "generic-garbage-collector": [
            _r(("get", "list", "watch", "patch", "update", "delete"), "*", "*"),
            _events(),
        ],
        "job-controller": [
            _r(("get", "list", "watch", "update", "patch"), BATCH, "jobs"),
            _r("update", BATCH, "jobs/status"),
            _r("update", BATCH, "jobs/finalizers"),
            _r(("list", "watch", "create", "delete", "patch"), LEGACY, "pods"),
            _events(),
        ],
        "namespace-controller": [
            _r(("get", "list", "watch", "delete"), LEGACY, "namespaces"),
            _r("update", LEGACY, "namespaces/finalize", "namespaces/status"),
            _r(("get", "list", "watch", "delete", "deletecollection"), "*", "*"),
        ],
        "node-controller": [
            _r(("get", "list", "watch", "update", "delete", "patch"), LEGACY, "nodes"),
            _r(("patch", "update"), LEGACY, "nodes/status"),
            _r(("patch", "update"), LEGACY, "pods/status"),
            _r(("list", "watch", "get", "delete"), LEGACY, "pods"),
            _events(),
        ],
        "pod-garbage-collector": [
            _r(("list", "watch", "delete"), LEGACY, "pods"),
            _r(("get", "list", "watch"), LEGACY, "nodes"),
            _r("patch", LEGACY, "pods/status"),
        ],
        "replicaset-controller": [
            _r(("get", "list", "watch", "update"), (APPS, EXTENSIONS), "replicasets"),
            _r("update", (APPS, EXTENSIONS), "replicasets/status"),
            _r("update", (APPS, EXTENSIONS), "replicasets/finalizers"),
            _r(("list", "watch", "patch", "create", "delete"), LEGACY, "pods"),
            _events(),
        ],
        "replication-controller": [
            _r(("get", "list", "watch", "update"), LEGACY, "replicationcontrollers"),
            _r("update", LEGACY, "replicationcontrollers/status"),
            _r("update", LEGACY, "replicationcontrollers/finalizers"),
            _r(("list", "watch", "patch", "create", "delete"), LEGACY, "pods"),
            _events(),
        ],
        "resourcequota-controller": [
            _r(("list", "watch"), "*", "*"),
            _r("update", LEGACY, "resourcequotas/status"),
            _events(),
        ],
        "root-ca-cert-publisher": [
            _r(("create", "update"), LEGACY, "configmaps"),
            _events(),
        ],
        "service-account-controller": [
            _r("create", LEGACY, "serviceaccounts"),
            _events(),
        ],
        "statefulset-controller": [
            _r(("list", "watch"), LEGACY, "pods"),
            _r(READ, APPS, "statefulsets"),
            _r("update", APPS, "statefulsets/status"),
            _r("update", APPS, "statefulsets/finalizers"),
            _r(("get", "create", "delete", "update", "patch"), LEGACY, "pods"),
            _r(("get", "create", "delete", "update", "patch", "list", "watch"), APPS, "controllerrevisions"),
            _r(("get", "create", "list", "watch"), LEGACY, "persistentvolumeclaims"),
            _r(("update", "delete"), LEGACY, "persistentvolumeclaims"),
            _r("update", LEGACY, "pods/finalizers"),
            _events(),
        ],
        "ttl-after-finished-controller": [
            _r(("get", "list", "watch", "delete"), BATCH, "jobs"),
            _events(),
        ],
    }


# Pinnace controller (its `name`) -> the upstream controller role whose rules it needs. Upstream
# runs nodeipam and taint eviction under the node controller's identity.
_PINNACE_CONTROLLERS = {
    "garbage-collector": "generic-garbage-collector",
    "namespace": "namespace-controller",
    "serviceaccount": "service-account-controller",
    "root-ca-cert-publisher": "root-ca-cert-publisher",
    "nodeipam": "node-controller",
    "nodelifecycle": "node-controller",
    "taint-eviction-controller": "node-controller",
    "endpoints": "endpoint-controller",
    "endpointslice": "endpointslice-controller",
    "resourcequota": "resourcequota-controller",
    "deployment": "deployment-controller",
    "replicaset": "replicaset-controller",
    "replicationcontroller": "replication-controller",
    "daemonset": "daemon-set-controller",
    "statefulset": "statefulset-controller",
    "job": "job-controller",
    "cronjob": "cronjob-controller",
    "ttl-after-finished": "ttl-after-finished-controller",
    "podgc": "pod-garbage-collector",
    "disruption": "disruption-controller",
    "csrsigning": "certificate-controller",
    "csrapproving": "certificate-controller",
    "csrcleaner": "certificate-controller",
}


def pinnace_controller_roles() -> dict[str, str]:
    """Pinnace's controller names -> upstream controller role (without the prefix)."""
    return dict(_PINNACE_CONTROLLERS)


# ---------------------------------------------------------------------------------------------
# Bindings


def _subject(kind: str, name: str, namespace: str = "") -> dict[str, str]:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace}
    return {"kind": kind, "apiGroup": RBAC_GROUP, "name": name}


def cluster_role_bindings() -> list[tuple[str, str, list[dict[str, str]]]]:
    """(binding name, cluster role, subjects), upstream's ClusterRoleBindings().

    `system:node` has no subjects, as upstream since the Node authorizer (1.8): nodes are
    authorized by the Node authorizer, which uses the role's rules scoped to the node's own
    objects. The three `kubeadm:` bindings are what `kubeadm init` creates upstream; Pinnace plays
    kubeadm's part (`pinnace token create` issues tokens in kubeadm's default group), so nodes
    can join with a bootstrap token and have their client certificates auto-approved.
    """
    return [
        ("cluster-admin", "cluster-admin", [_subject("Group", "system:masters")]),
        ("system:monitoring", "system:monitoring", [_subject("Group", "system:monitoring")]),
        ("system:discovery", "system:discovery", [_subject("Group", "system:authenticated")]),
        ("system:basic-user", "system:basic-user", [_subject("Group", "system:authenticated")]),
        (
            "system:public-info-viewer",
            "system:public-info-viewer",
            [_subject("Group", "system:authenticated"), _subject("Group", "system:unauthenticated")],
        ),
        ("system:node-proxier", "system:node-proxier", [_subject("User", "system:kube-proxy")]),
        (
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            [_subject("User", "system:kube-controller-manager")],
        ),
        ("system:kube-dns", "system:kube-dns", [_subject("ServiceAccount", "kube-dns", "kube-system")]),
        ("system:kube-scheduler", "system:kube-scheduler", [_subject("User", "system:kube-scheduler")]),
        ("system:volume-scheduler", "system:volume-scheduler", [_subject("User", "system:kube-scheduler")]),
        (
            "system:pinnace:kube-scheduler",
            "system:pinnace:kube-scheduler",
            [_subject("User", "system:kube-scheduler")],
        ),
        ("system:node", "system:node", []),
        (
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            [_subject("Group", "system:bootstrappers:kubeadm:default-node-token")],
        ),
        (
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            [_subject("Group", "system:bootstrappers:kubeadm:default-node-token")],
        ),
        # kube-proxy on a Pinnace-provisioned node runs as a systemd unit with the kubelet's
        # rotated client certificate (node_bootstrap/cloudinit), because the user-data may carry
        # nothing long-lived; the node identity needs kube-proxy's read access to Services and
        # EndpointSlices, which the Node authorizer's rules do not give.
        ("pinnace:node-proxier", "pinnace:node-proxier", [_subject("Group", "system:nodes")]),
        (
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            [_subject("Group", "system:nodes")],
        ),
        (
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            [_subject("Group", "system:serviceaccounts")],
        ),
        (
            "system:cloud-controller-manager",
            "system:cloud-controller-manager",
            [
                _subject("User", "system:cloud-controller-manager"),
                _subject("ServiceAccount", "cloud-controller-manager", "kube-system"),
            ],
        ),
        (PROVISIONER_USER, PROVISIONER_USER, [_subject("User", PROVISIONER_USER)]),
    ]


def controller_role_bindings() -> list[tuple[str, str, list[dict[str, str]]]]:
    """Upstream's controller bindings: `system:controller:<c>` to the ServiceAccount
    kube-system/<c> (what `--use-service-account-credentials` runs each controller as)."""
    return [
        (
            CONTROLLER_ROLE_PREFIX + name,
            CONTROLLER_ROLE_PREFIX + name,
            [_subject("ServiceAccount", name, "kube-system")],
        )
        for name in controller_roles()
    ]


def kube_controller_manager_controller_bindings() -> list[tuple[str, str, list[dict[str, str]]]]:
    """Pinnace runs every controller under the one identity `system:kube-controller-manager`
    (upstream's `--use-service-account-credentials=false`), so that user is also bound to the
    role of each controller it runs: it holds the union of what upstream's per-controller
    ServiceAccounts hold, and nothing more."""
    roles = sorted(set(_PINNACE_CONTROLLERS.values()) | {"clusterrole-aggregation-controller"})
    return [
        (
            f"system:kube-controller-manager:{name}",
            CONTROLLER_ROLE_PREFIX + name,
            [_subject("User", "system:kube-controller-manager")],
        )
        for name in roles
    ]


# ---------------------------------------------------------------------------------------------
# namespace_policy.go: Roles and RoleBindings in kube-system and kube-public


def namespace_roles() -> dict[str, dict[str, list[PolicyRule]]]:
    """namespace -> Role name -> rules."""
    leader_locking = [
        _r(("watch", "get", "list", "create", "update"), COORDINATION, "leases"),
        _r(("watch", "get", "list", "create", "update"), COORDINATION, "leasecandidates"),
    ]
    return {
        "kube-system": {
            "extension-apiserver-authentication-reader": [
                _r(READ, LEGACY, "configmaps", names=("extension-apiserver-authentication",)),
            ],
            "system::leader-locking-kube-controller-manager": leader_locking,
            "system::leader-locking-kube-scheduler": list(leader_locking),
            "system:controller:bootstrap-signer": [_r(READ, LEGACY, "secrets")],
            "system:controller:cloud-provider": [
                _r(("create", "get", "list", "watch"), LEGACY, "configmaps")
            ],
            "system:controller:token-cleaner": [
                _r(("delete", "get", "list", "watch"), LEGACY, "secrets"),
                _events(),
            ],
            # Bootstrap-token Secrets for the Machines it launches, and its leader Lease.
            PROVISIONER_USER: [
                _r(("create", "get", "delete"), LEGACY, "secrets"),
                _r(("get", "create", "update"), COORDINATION, "leases"),
            ],
        },
        "kube-public": {
            "system:controller:bootstrap-signer": [
                _r(READ, LEGACY, "configmaps"),
                _r("update", LEGACY, "configmaps", names=("cluster-info",)),
                _events(),
            ],
            # kubeadm's: anyone may read the cluster-info ConfigMap, which is how a joining node
            # finds the cluster CA before it has credentials (it pins the CA by hash).
            "kubeadm:bootstrap-signer-clusterinfo": [
                _r("get", LEGACY, "configmaps", names=("cluster-info",)),
            ],
        },
    }


def namespace_role_bindings() -> list[tuple[str, str, str, list[dict[str, str]]]]:
    """(namespace, binding name, Role, subjects): upstream's, then Pinnace's single controller
    manager identity bound to the namespaced roles of the controllers it runs (token cleaner,
    bootstrap signer), as kube_controller_manager_controller_bindings does cluster-wide."""
    kcm = _subject("User", "system:kube-controller-manager")
    return [
        (
            "kube-public",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            [_subject("ServiceAccount", "bootstrap-signer", "kube-system")],
        ),
        (
            "kube-system",
            "system::extension-apiserver-authentication-reader",
            "extension-apiserver-authentication-reader",
            [kcm, _subject("User", "system:kube-scheduler")],
        ),
        (
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            "system::leader-locking-kube-controller-manager",
            [
                kcm,
                _subject("ServiceAccount", "kube-controller-manager", "kube-system"),
                _subject("ServiceAccount", "leader-election-controller", "kube-system"),
            ],
        ),
        (
            "kube-system",
            "system::leader-locking-kube-scheduler",
            "system::leader-locking-kube-scheduler",
            [
                _subject("User", "system:kube-scheduler"),
                _subject("ServiceAccount", "kube-scheduler", "kube-system"),
            ],
        ),
        (
            "kube-system",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            [_subject("ServiceAccount", "bootstrap-signer", "kube-system")],
        ),
        (
            "kube-system",
            "system:controller:cloud-provider",
            "system:controller:cloud-provider",
            [_subject("ServiceAccount", "cloud-provider", "kube-system")],
        ),
        (
            "kube-system",
            "system:controller:token-cleaner",
            "system:controller:token-cleaner",
            [_subject("ServiceAccount", "token-cleaner", "kube-system")],
        ),
        (
            "kube-system",
            "system:kube-controller-manager:token-cleaner",
            "system:controller:token-cleaner",
            [kcm],
        ),
        (
            "kube-system",
            "system:kube-controller-manager:bootstrap-signer",
            "system:controller:bootstrap-signer",
            [kcm],
        ),
        (
            "kube-public",
            "system:kube-controller-manager:bootstrap-signer",
            "system:controller:bootstrap-signer",
            [kcm],
        ),
        ("kube-system", PROVISIONER_USER, PROVISIONER_USER, [_subject("User", PROVISIONER_USER)]),
        (
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            "kubeadm:bootstrap-signer-clusterinfo",
            [_subject("User", "system:anonymous")],
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Objects


def _meta(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "labels": {**BOOTSTRAPPING_LABEL, **labels},
        "annotations": {AUTOUPDATE_ANNOTATION: "true"},
    }


def cluster_role_objects() -> list[dict[str, Any]]:
    """Every bootstrap ClusterRole as an rbac.authorization.k8s.io/v1 object."""
    out: list[dict[str, Any]] = []
    roles = [(n, r, labels, sel) for n, r, labels, sel in cluster_roles()]
    roles += [(CONTROLLER_ROLE_PREFIX + n, r, {}, None) for n, r in controller_roles().items()]
    for name, rules, labels, selectors in roles:
        obj: dict[str, Any] = {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "ClusterRole",
            "metadata": _meta(name, labels),
            "rules": [rule_to_dict(r) for r in rules],
        }
        if selectors is not None:
            obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": s} for s in selectors]}
        out.append(obj)
    return out


def cluster_role_binding_objects() -> list[dict[str, Any]]:
    bindings = (
        cluster_role_bindings() + controller_role_bindings() + kube_controller_manager_controller_bindings()
    )
    return [
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(name, {}),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": subjects,
        }
        for name, role, subjects in bindings
    ]


def role_objects() -> list[dict[str, Any]]:
    """Every bootstrap Role (namespaced) as an rbac.authorization.k8s.io/v1 object."""
    return [
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "Role",
            "metadata": {**_meta(name, {}), "namespace": namespace},
            "rules": [rule_to_dict(r) for r in rules],
        }
        for namespace, roles in namespace_roles().items()
        for name, rules in roles.items()
    ]


def role_binding_objects() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "RoleBinding",
            "metadata": {**_meta(name, {}), "namespace": namespace},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role},
            "subjects": subjects,
        }
        for namespace, name, role, subjects in namespace_role_bindings()
    ]
