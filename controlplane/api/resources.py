"""The resource registry: what the API serves, as data.

Each served resource is a frozen `ResourceInfo`: group/version/kind, plural and singular names,
scope, short names and categories, subresources and the strategy facts the request pipeline
needs (whether status is a subresource, whether `metadata.generation` is tracked). CRDs add
entries at run time, so the registry is an object, not a module constant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "ALL_VERBS",
    "BUILTINS",
    "CRD_GROUP",
    "CRD_PLURAL",
    "SCALE_SUBRESOURCE",
    "STATUS_SUBRESOURCE",
    "GroupVersionKind",
    "Registry",
    "ResourceInfo",
    "Subresource",
    "default_registry",
    "version_priority",
]

ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@dataclass(frozen=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True)
class Subresource:
    """`pods/status`, `deployments/scale`, ... as discovery lists them."""

    name: str
    verbs: tuple[str, ...]
    # A subresource with its own kind (scale -> autoscaling/v1 Scale, eviction -> policy/v1 Eviction).
    kind: str = ""
    group: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class ResourceInfo:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()
    # Strategy facts.
    status_subresource: bool = False  # main writes ignore .status; /status writes only .status
    tracks_generation: bool = False  # metadata.generation starts at 1 and bumps on spec changes
    # Stored-version facts for custom resources (version served vs. the version kept in storage).
    storage_version: str = ""
    custom: bool = False
    # A built-in kind kept in another group's storage, as that group's apiVersion: events.k8s.io/v1
    # Events are stored, and served, as core/v1 Events ("v1"); controlplane.api.event_versions.
    stored_as: str = ""
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gvk(self) -> GroupVersionKind:
        return GroupVersionKind(self.group, self.version, self.kind)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def group_resource(self) -> str:
        """`deployments.apps`; the form used in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def storage_prefix(self) -> str:
        """Keys are `/registry/<group or core>/<plural>/[<namespace>/]<name>`; one prefix per resource
        shared by every version of it, so all versions read and write the same objects. A kind
        stored as another group's (`stored_as`) shares that group's keys."""
        group = self.stored_as.rpartition("/")[0] if self.stored_as else self.group
        return f"/registry/{group or 'core'}/{self.plural}/"

    def key(self, namespace: str, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix}{namespace}/{name}"
        return f"{self.storage_prefix}{name}"

    def list_prefix(self, namespace: str | None) -> str:
        if self.namespaced and namespace:
            return f"{self.storage_prefix}{namespace}/"
        return self.storage_prefix

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None


_STATUS = Subresource("status", ("get", "patch", "update"))
_SCALE = Subresource("scale", ("get", "patch", "update"), kind="Scale", group="autoscaling", version="v1")
STATUS_SUBRESOURCE = _STATUS
SCALE_SUBRESOURCE = _SCALE

CRD_GROUP = "apiextensions.k8s.io"
CRD_PLURAL = "customresourcedefinitions"


def _r(
    group: str,
    version: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    subresources: tuple[Subresource, ...] = (),
    generation: bool = False,
    verbs: tuple[str, ...] = ALL_VERBS,
    stored_as: str = "",
) -> ResourceInfo:
    return ResourceInfo(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        namespaced=namespaced,
        short_names=short,
        categories=categories,
        subresources=subresources,
        status_subresource=_STATUS in subresources,
        tracks_generation=generation,
        verbs=verbs,
        stored_as=stored_as,
    )


BUILTINS: tuple[ResourceInfo, ...] = (
    # core/v1
    _r(
        "",
        "v1",
        "Namespace",
        "namespaces",
        namespaced=False,
        short=("ns",),
        subresources=(_STATUS, Subresource("finalize", ("update",))),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _r(
        "",
        "v1",
        "Pod",
        "pods",
        short=("po",),
        categories=("all",),
        subresources=(
            _STATUS,
            Subresource("binding", ("create",), kind="Binding"),
            Subresource("eviction", ("create",), kind="Eviction", group="policy", version="v1"),
            Subresource("log", ("get",)),
        ),
        generation=True,
    ),
    _r(
        "",
        "v1",
        "Service",
        "services",
        short=("svc",),
        categories=("all",),
        subresources=(_STATUS,),
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    _r("", "v1", "Endpoints", "endpoints", short=("ep",)),
    _r("", "v1", "ConfigMap", "configmaps", short=("cm",)),
    _r("", "v1", "Secret", "secrets"),
    _r(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        short=("sa",),
        subresources=(
            Subresource(
                "token", ("create",), kind="TokenRequest", group="authentication.k8s.io", version="v1"
            ),
        ),
    ),
    _r("", "v1", "Node", "nodes", namespaced=False, short=("no",), subresources=(_STATUS,)),
    _r("", "v1", "Event", "events", short=("ev",)),
    _r("", "v1", "LimitRange", "limitranges", short=("limits",)),
    _r("", "v1", "ResourceQuota", "resourcequotas", short=("quota",), subresources=(_STATUS,)),
    _r(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        namespaced=False,
        short=("pv",),
        subresources=(_STATUS,),
    ),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",), subresources=(_STATUS,)),
    _r(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        short=("rc",),
        categories=("all",),
        subresources=(_SCALE, _STATUS),
        generation=True,
    ),
    _r("", "v1", "PodTemplate", "podtemplates"),
    # apps/v1
    _r(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        short=("deploy",),
        categories=("all",),
        subresources=(_SCALE, _STATUS),
        generation=True,
    ),
    _r(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        short=("rs",),
        categories=("all",),
        subresources=(_SCALE, _STATUS),
        generation=True,
    ),
    _r(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        short=("sts",),
        categories=("all",),
        subresources=(_SCALE, _STATUS),
        generation=True,
    ),
    _r(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        short=("ds",),
        categories=("all",),
        subresources=(_STATUS,),
        generation=True,
    ),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions"),
    # batch/v1
    _r("batch", "v1", "Job", "jobs", categories=("all",), subresources=(_STATUS,), generation=True),
    _r(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        short=("cj",),
        categories=("all",),
        subresources=(_STATUS,),
        generation=True,
    ),
    # autoscaling/v2
    _r(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        short=("hpa",),
        categories=("all",),
        subresources=(_STATUS,),
        generation=True,
    ),
    _r("coordination.k8s.io", "v1", "Lease", "leases"),
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", generation=True),
    _r("events.k8s.io", "v1", "Event", "events", short=("ev",), stored_as="v1"),
    _r(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        short=("pdb",),
        subresources=(_STATUS,),
        generation=True,
    ),
    # Create-only reviews: answered, never stored (controlplane/apiserver/authentication_reviews.py).
    _r("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", namespaced=False, verbs=("create",)),
    _r(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        namespaced=False,
        verbs=("create",),
    ),
    # kubectl 1.27's `auth whoami` asks v1beta1 (then v1alpha1) only; 1.28+ ask v1 first.
    _r(
        "authentication.k8s.io",
        "v1beta1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        namespaced=False,
        verbs=("create",),
    ),
    # Create-only access reviews: answered, never stored (controlplane/apiserver/authorization_reviews.py).
    _r(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        namespaced=False,
        verbs=("create",),
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        verbs=("create",),
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        namespaced=False,
        verbs=("create",),
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        namespaced=False,
        verbs=("create",),
    ),
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", namespaced=False, short=("pc",)),
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", namespaced=False, short=("sc",)),
    _r(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        short=("ing",),
        subresources=(_STATUS,),
        generation=True,
    ),
    _r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", namespaced=False),
    _r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", short=("netpol",), generation=True),
    _r(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        namespaced=False,
        short=("csr",),
        subresources=(Subresource("approval", ("get", "patch", "update")), _STATUS),
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        namespaced=False,
        categories=("api-extensions",),
        generation=True,
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        namespaced=False,
        categories=("api-extensions",),
        generation=True,
    ),
    _r(
        CRD_GROUP,
        "v1",
        "CustomResourceDefinition",
        CRD_PLURAL,
        namespaced=False,
        short=("crd", "crds"),
        categories=("api-extensions",),
        subresources=(_STATUS,),
        generation=True,
    ),
)


class Registry:
    """Lookup of served resources by group/version/plural and by kind; mutable for CRDs."""

    def __init__(self, resources: Iterable[ResourceInfo] = ()) -> None:
        self._by_path: dict[tuple[str, str, str], ResourceInfo] = {}
        self._by_kind: dict[tuple[str, str, str], ResourceInfo] = {}
        self.generation = 0  # bumped on every change; discovery and OpenAPI hashes key off it
        # Per group-version change counters: a CRD change rebuilds only its own OpenAPI documents.
        self._gv_generation: dict[tuple[str, str], int] = {}
        # CRD name -> the (group, version, plural) entries it serves.
        self._crd_entries: dict[str, list[tuple[str, str, str]]] = {}
        for info in resources:
            self.add(info)

    def _touch(self, group: str, version: str) -> None:
        self.generation += 1
        self._gv_generation[(group, version)] = self.generation

    def gv_generation(self, group: str, version: str) -> int:
        return self._gv_generation.get((group, version), 0)

    def add(self, info: ResourceInfo) -> None:
        self._by_path[(info.group, info.version, info.plural)] = info
        self._by_kind[(info.group, info.version, info.kind)] = info
        self._touch(info.group, info.version)

    def remove(self, group: str, version: str, plural: str) -> None:
        info = self._by_path.pop((group, version, plural), None)
        if info is not None:
            if self._by_kind.get((info.group, info.version, info.kind)) is info:
                del self._by_kind[(info.group, info.version, info.kind)]
            self._touch(group, version)

    def set_custom(self, crd_name: str, infos: Iterable[ResourceInfo]) -> None:
        """Serve exactly `infos` for a CRD (none: stop serving it). Entries that did not change
        are left alone, so their OpenAPI documents keep their hash. A custom entry never
        replaces a built-in one."""
        wanted = {(i.group, i.version, i.plural): i for i in infos}
        for key in self._crd_entries.pop(crd_name, []):
            current = self._by_path.get(key)
            if current is not None and current.custom and key not in wanted:
                self.remove(*key)
        served: list[tuple[str, str, str]] = []
        for key, info in wanted.items():
            current = self._by_path.get(key)
            if current is not None and not current.custom:
                continue
            if current is None or not _same_entry(current, info):
                self.add(info)
            else:
                # Same facts: keep serving, but with the fresh extras (compiled schema etc.).
                self._by_path[key] = info
                self._by_kind[(info.group, info.version, info.kind)] = info
            served.append(key)
        if served:
            self._crd_entries[crd_name] = served

    def custom_entries(self, crd_name: str) -> list[ResourceInfo]:
        return [i for k in self._crd_entries.get(crd_name, []) if (i := self._by_path.get(k)) is not None]

    def get(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceInfo | None:
        return self._by_kind.get((group, version, kind))

    def __iter__(self) -> Iterator[ResourceInfo]:
        return iter(list(self._by_path.values()))

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred first: upstream's kube-aware version order
        (GA before beta before alpha, higher numbers first), which is how CRD groups list them."""
        out: dict[str, list[str]] = {}
        for info in self._by_path.values():
            versions = out.setdefault(info.group, [])
            if info.version not in versions:
                versions.append(info.version)
        for versions in out.values():
            versions.sort(key=version_priority)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return sorted(
            (i for i in self._by_path.values() if i.group == group and i.version == version),
            key=lambda i: i.plural,
        )


def _same_entry(a: ResourceInfo, b: ResourceInfo) -> bool:
    """Equal facts and equal extras: nothing a client could see changed."""
    return a == b and _comparable(a.extra) == _comparable(b.extra)


def _comparable(extra: dict[str, object]) -> dict[str, object]:
    # Compiled schema objects compare by identity (the raw schema they come from is in extra
    # too), and the CRD object itself changes with every status write.
    return {k: v for k, v in extra.items() if k not in ("schema", "crd_object")}


_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key for upstream's `version.CompareKubeAwareVersionStrings`: v2 > v1 > v1beta2 >
    v1beta1 > v1alpha1 > anything not kube-like (those alphabetically)."""
    found = _VERSION.match(version)
    if found is None:
        return (3, 0, 0, version)
    major = int(found.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[found.group(2)]
    minor = int(found.group(3) or 0)
    return (stage, -major, -minor, "")


def default_registry() -> Registry:
    return Registry(BUILTINS)
