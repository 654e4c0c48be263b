"""A kopf operator for `Website` objects (examples.pinnace.dev/v1).

Each Website gets two children owned through ownerReferences (kopf.adopt), so the garbage
collector removes them with their owner:
  * ConfigMap `<name>-content` holding the page as index.html;
  * Deployment `<name>` running nginx with that ConfigMap mounted as its document root.

kopf writes the status (`phase`, `configMap`, `deployment`, `contentBytes`, and each handler's
result) through the status subresource. Because there is a delete handler, kopf puts its
finalizer on every Website: deleting one first archives the page into ConfigMap
`<name>-archive`, which has no owner and so outlives the Website.

Run it with `kopf run --standalone [--namespace NS | -A] operator.py` and KUBECONFIG set.
"""

from __future__ import annotations

from typing import Any, cast

import kopf
import kubernetes
from kubernetes.client import AppsV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

GROUP = "examples.pinnace.dev"
VERSION = "v1"
PLURAL = "websites"
APP_LABEL = "examples.pinnace.dev/website"


@kopf.on.startup()
def login(settings: kopf.OperatorSettings, **_: Any) -> None:
    # The handlers use the official client for the children; kopf logs in on its own.
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    settings.posting.level = 20  # logging.INFO: post kopf.info() events as k8s Events


def content_configmap(name: str, content: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-content", "labels": {APP_LABEL: name}},
        "data": {"index.html": content},
    }


def nginx_deployment(name: str, replicas: int, image: str) -> dict[str, Any]:
    labels = {APP_LABEL: name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": image,
                            "ports": [{"containerPort": 80, "name": "http"}],
                            "volumeMounts": [{"name": "content", "mountPath": "/usr/share/nginx/html"}],
                        }
                    ],
                    "volumes": [{"name": "content", "configMap": {"name": f"{name}-content"}}],
                },
            },
        },
    }


def upsert_configmap(namespace: str, body: dict[str, Any]) -> None:
    core = CoreV1Api()
    try:
        core.create_namespaced_config_map(namespace, cast(Any, body))
    except ApiException as e:
        if e.status != 409:
            raise
        # A retried handler finds the child from its earlier attempt: bring it up to date.
        core.replace_namespaced_config_map(body["metadata"]["name"], namespace, cast(Any, body))


def upsert_deployment(namespace: str, body: dict[str, Any]) -> None:
    apps = AppsV1Api()
    try:
        apps.create_namespaced_deployment(namespace, cast(Any, body))
    except ApiException as e:
        if e.status != 409:
            raise
        apps.patch_namespaced_deployment(body["metadata"]["name"], namespace, body)


def reconcile(spec: kopf.Spec, name: str, namespace: str | None, patch: kopf.Patch) -> dict[str, Any]:
    assert namespace is not None  # Websites are namespaced
    content = str(spec["content"])
    configmap = content_configmap(name, content)
    deployment = nginx_deployment(
        name, int(spec.get("replicas", 1)), str(spec.get("image", "nginx:1.27-alpine"))
    )
    # ownerReferences to the Website (controller=true, blockOwnerDeletion=true) and its namespace.
    kopf.adopt([configmap, deployment])
    upsert_configmap(namespace, configmap)
    upsert_deployment(namespace, deployment)
    patch.status["phase"] = "Ready"
    patch.status["configMap"] = configmap["metadata"]["name"]
    patch.status["deployment"] = deployment["metadata"]["name"]
    patch.status["contentBytes"] = len(content.encode())
    return {"children": [configmap["metadata"]["name"], deployment["metadata"]["name"]]}


@kopf.on.create(GROUP, VERSION, PLURAL)
def create_fn(
    spec: kopf.Spec, name: str, namespace: str | None, patch: kopf.Patch, body: kopf.Body, **_: Any
) -> dict[str, Any]:
    result = reconcile(spec, name, namespace, patch)
    kopf.info(body, reason="Created", message=f"Serving {len(str(spec['content']))} characters")
    return result


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def update_fn(
    spec: kopf.Spec, name: str, namespace: str | None, patch: kopf.Patch, body: kopf.Body, **_: Any
) -> dict[str, Any]:
    result = reconcile(spec, name, namespace, patch)
    kopf.info(body, reason="Updated", message="Children brought up to date")
    return result


@kopf.on.resume(GROUP, VERSION, PLURAL)
def resume_fn(
    spec: kopf.Spec, name: str, namespace: str | None, patch: kopf.Patch, **_: Any
) -> dict[str, Any]:
    # After an operator restart the children may have drifted or been removed by hand.
    return reconcile(spec, name, namespace, patch)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete_fn(spec: kopf.Spec, name: str, namespace: str | None, logger: kopf.Logger, **_: Any) -> None:
    # kopf's finalizer keeps the Website (and its spec) readable until this handler succeeds.
    assert namespace is not None
    archive = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-archive", "labels": {APP_LABEL: name}},
        "data": {"index.html": str(spec["content"])},
    }
    upsert_configmap(namespace, archive)
    logger.info(f"Website {name} archived into ConfigMap {name}-archive")
