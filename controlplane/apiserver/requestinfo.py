"""Parse an API path into what it addresses, as upstream's RequestInfoFactory does.

`/api/v1/namespaces/default/pods/p1/status` -> group "", version v1, namespace default, resource pods,
name p1, subresource status. Pure; the verb is derived from the HTTP method and the parse.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RequestInfo", "parse"]


@dataclass(frozen=True)
class RequestInfo:
    is_resource_request: bool
    path: str
    verb: str = ""
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    name: str = ""
    subresource: str = ""
    # Set for legacy `/api/v1/watch/...` paths.
    legacy_watch: bool = False


_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


def parse(method: str, path: str, *, watch_param: bool = False) -> RequestInfo:
    """Split a request path. Non-resource paths (discovery, health) come back with
    `is_resource_request=False`."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return RequestInfo(False, path, verb=method.lower())
    if parts[0] == "api":
        if len(parts) < 2:
            return RequestInfo(False, path, verb=method.lower())
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return RequestInfo(False, path, verb=method.lower())
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return RequestInfo(False, path, verb=method.lower())

    legacy_watch = False
    if rest[0] == "watch":
        legacy_watch = True
        rest = rest[1:]

    namespace = ""
    # `namespaces/<ns>/<resource>...` addresses namespaced resources; `namespaces/<ns>` alone (and
    # `namespaces/<ns>/status|finalize`) addresses the namespace object itself.
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace = rest[1]
        rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if resource == "namespaces" and name:
        namespace = name
    if len(rest) > 3:
        # Deeper paths (proxy) are not served; keep them distinguishable.
        subresource = "/".join(rest[2:])

    verb = _METHOD_VERBS.get(method.upper(), method.lower())
    if method.upper() in ("GET", "HEAD"):
        if legacy_watch or watch_param:
            verb = "watch"
        elif not name:
            verb = "list"
    elif method.upper() == "DELETE" and not name:
        verb = "deletecollection"
    return RequestInfo(
        True,
        path,
        verb=verb,
        group=group,
        version=version,
        namespace=namespace,
        resource=resource,
        name=name,
        subresource=subresource,
        legacy_watch=legacy_watch,
    )


def name_from_field_selector(selector: str) -> str:
    """The object a list/watch is pinned to by `metadata.name=<name>`, as upstream's
    RequestInfoFactory sets RequestInfo.Name for authorization: so RBAC resourceNames and the
    Node authorizer ("only its own Node") allow a watch of that one object. "" when not pinned."""
    for term in selector.split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and not key.endswith("!") and key.strip() == "metadata.name":
            name = value.strip()
            # path.IsValidPathSegmentName: no "/" or "%", not "." or ".."
            if name and name not in (".", "..") and "/" not in name and "%" not in name:
                return name
            return ""
    return ""
