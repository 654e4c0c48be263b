"""Subresources with their own shapes: scale, binding, eviction, log, finalize, approval.

`status` needs nothing special beyond the strategy (rest.py handles it with `ri.subresource`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from controlplane.api import errors, selectors
from controlplane.api.patch import json_patch, merge_patch, strategic
from controlplane.api.resources import ResourceInfo
from controlplane.apiserver import admission, codec, pod_logs, rest
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.requestinfo import RequestInfo

__all__ = ["serve"]


async def serve(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.StreamResponse:
    sub = ri.subresource
    method = request.method
    if info.group == "certificates.k8s.io" and sub in ("status", "approval") and method in ("PUT", "PATCH"):
        from controlplane.apiserver import certificates

        serve_csr = certificates.serve_approval if sub == "approval" else certificates.serve_status
        return await serve_csr(ctx, info, ri, request)
    if sub == "status" or (sub == "approval" and method == "GET"):
        if method == "GET":
            return await rest.get(ctx, info, ri, request)
        if method == "PUT":
            return await rest.update(
                ctx, info, RequestInfo(**{**ri.__dict__, "subresource": "status"}), request
            )
        if method == "PATCH":
            return await rest.patch(
                ctx, info, RequestInfo(**{**ri.__dict__, "subresource": "status"}), request
            )
    if sub == "scale":
        return await _scale(ctx, info, ri, request)
    if sub == "binding" and method == "POST":
        return await _binding(ctx, info, ri, request)
    if sub == "eviction" and method == "POST":
        return await _eviction(ctx, info, ri, request)
    if sub == "log" and method == "GET":
        return await pod_logs.serve(ctx, info, ri, request)
    if sub == "finalize" and method == "PUT":
        return await _finalize(ctx, info, ri, request)
    raise errors.MethodNotSupported(
        message="the server does not allow this method on the requested resource",
        kind=f"{info.plural}/{sub}",
        group=info.group,
        name=ri.name,
    )


# ---------------------------------------------------------------------------------------------
# scale


def _replicas_paths(info: ResourceInfo) -> tuple[str, str, str]:
    """(spec replicas path, status replicas path, label selector path) as dotted paths."""
    scale = info.extra.get("scale")
    if isinstance(scale, dict):
        return (
            str(scale.get("specReplicasPath", ".spec.replicas")),
            str(scale.get("statusReplicasPath", ".status.replicas")),
            str(scale.get("labelSelectorPath", "")),
        )
    return ".spec.replicas", ".status.replicas", ""


def _get_path(obj: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value


def _to_scale(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    spec_path, status_path, selector_path = _replicas_paths(info)
    meta = obj["metadata"]
    selector = ""
    if selector_path:
        found = _get_path(obj, selector_path)
        selector = found if isinstance(found, str) else ""
    elif not info.custom:  # a custom resource without labelSelectorPath has no selector, as upstream
        sel = obj.get("spec", {}).get("selector")
        if isinstance(sel, dict) and ("matchLabels" in sel or "matchExpressions" in sel):
            selector = selectors.format_label_selector(selectors.label_selector_from_dict(sel))
        elif isinstance(sel, dict):  # ReplicationController: a plain map
            selector = ",".join(f"{k}={v}" for k, v in sorted(sel.items()))
    scale_meta = {
        "name": meta["name"],
        "namespace": meta.get("namespace", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
        "creationTimestamp": meta.get("creationTimestamp"),
    }
    status: dict[str, Any] = {"replicas": int(_get_path(obj, status_path) or 0)}
    if selector:
        status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": int(_get_path(obj, spec_path) or 0)},
        "status": status,
    }


async def _scale(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.Response:
    if request.method == "GET":
        obj = await ctx.store.get(info, ri.namespace, ri.name)
        return codec.json_response(_to_scale(info, obj))
    if request.method not in ("PUT", "PATCH"):
        raise errors.MethodNotSupported(
            message="the server does not allow this method on the requested resource"
        )
    opts = rest.write_options(request)
    raw = await codec.read_body(request)
    content_type = codec.media_type(request.content_type) or codec.JSON
    body = codec.decode_body(raw, content_type, api_version="autoscaling/v1", kind="Scale")
    spec_path, _, _ = _replicas_paths(info)

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        scale = _to_scale(info, current)
        if request.method == "PUT":
            new_scale = body
        elif content_type == codec.JSON_PATCH:
            new_scale = json_patch.apply(scale, body)
        elif content_type == codec.MERGE_PATCH:
            new_scale = merge_patch.apply(scale, body)
        elif content_type == codec.STRATEGIC_MERGE_PATCH:
            new_scale = strategic.apply(scale, body, None)
        else:
            raise errors.UnsupportedMediaType(message=f"unsupported patch type for scale: {content_type}")
        if not isinstance(new_scale, dict):
            raise errors.BadRequest(message="scale must be an object")
        wanted_rv = (new_scale.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"].get("resourceVersion"):
            raise errors.Conflict.modified(info.plural, info.group, ri.name)
        updated = current  # write_update's private copy
        _set_path(updated, spec_path, _scale_replicas(new_scale, ri.name))
        return updated

    def from_view(scale: dict[str, Any], obj: dict[str, Any]) -> None:
        # What a mutating webhook made of the Scale, validated again as upstream does after
        # admission, goes into the object.
        _set_path(obj, spec_path, _scale_replicas(scale, ri.name))

    view = admission.SubresourceView(
        "scale", "autoscaling/v1", "Scale", lambda obj: _to_scale(info, obj), from_view
    )
    scale_ri = RequestInfo(**{**ri.__dict__, "subresource": ""})
    warnings: list[str] = []
    result, _ = await rest.write_update(
        ctx, info, scale_ri, mutate, opts, warnings=warnings, admission_view=view
    )
    return codec.json_response(_to_scale(info, result), headers=rest.warning_headers(warnings))


def _scale_replicas(scale: dict[str, Any], name: str) -> int:
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.Invalid.for_object(
            "Scale",
            "autoscaling",
            name,
            [
                errors.Cause(
                    errors.FIELD_VALUE_INVALID,
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                    "spec.replicas",
                )
            ],
        )
    return replicas


# ---------------------------------------------------------------------------------------------
# pods/binding and pods/eviction


async def _binding(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.Response:
    body = codec.decode_body(
        await codec.read_body(request),
        codec.media_type(request.content_type) or codec.JSON,
        api_version="v1",
        kind="Binding",
    )
    opts = rest.write_options(request)
    if not isinstance(body, dict):
        raise errors.BadRequest(message="Binding must be an object")
    # Upstream admits a binding as a CREATE of pods/binding whose object is the Binding; the pod
    # update it makes is not admitted again.
    attrs = admission.Attributes(
        info,
        "CREATE",
        ri.namespace,
        ri.name,
        "binding",
        opts.dry_run,
        view=_own_kind("binding", "v1", "Binding"),
    )
    await ctx.admission.admit(ctx, attrs, body, None)
    target = body.get("target") or {}
    node = target.get("name")
    if not node:
        raise errors.Invalid.for_object(
            "Binding",
            "",
            ri.name,
            [errors.Cause(errors.FIELD_VALUE_REQUIRED, "Required value", "target.name")],
        )

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        if current["metadata"].get("deletionTimestamp"):
            raise errors.Conflict(
                message=f"pod {ri.name} is being deleted, cannot be assigned to a host",
                name=ri.name,
                kind="pods",
            )
        if current.get("spec", {}).get("nodeName"):
            raise errors.Conflict(
                message=f'pod {ri.name} is already assigned to node "{current["spec"]["nodeName"]}"',
                name=ri.name,
                kind="pods",
            )
        updated = current  # a private decode of the stored object (`_write_raw`)
        updated.setdefault("spec", {})["nodeName"] = node
        conditions = updated.setdefault("status", {}).setdefault("conditions", [])
        conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": ctx.now()}
        )
        return updated

    pod_ri = RequestInfo(**{**ri.__dict__, "subresource": ""})
    # Binding writes spec.nodeName and the PodScheduled condition together, as upstream's
    # BindingREST does through its own update path; bypass the main-resource strategy for status.
    async with ctx.admission.validate(ctx, attrs, body, None) as admitted:
        await _write_raw(ctx, info, pod_ri, mutate, opts)
        await admitted.committed()
    return codec.json_response(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
        status=201,
        headers=rest.warning_headers(attrs.warnings),
    )


def _own_kind(subresource: str, api_version: str, kind: str) -> admission.SubresourceView:
    """A subresource created with an object of its own kind (Binding, Eviction): admission sees
    that object as it is, and what a mutating webhook does to it stays in it."""

    def same(obj: dict[str, Any]) -> dict[str, Any]:
        return obj

    def keep(view: dict[str, Any], obj: dict[str, Any]) -> None:
        if view is not obj:
            obj.clear()
            obj.update(view)

    return admission.SubresourceView(subresource, api_version, kind, same, keep)


async def _write_raw(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, mutate: Any, opts: rest.WriteOptions
) -> dict[str, Any]:
    """`mutate` gets an object of its own, decoded for this attempt: it may change it in place."""
    for _ in range(rest.MAX_UPDATE_RETRIES):
        current = await ctx.store.get(info, ri.namespace, ri.name)
        expected = int(current["metadata"]["resourceVersion"])
        updated: dict[str, Any] = mutate(current)
        if opts.dry_run:
            return updated
        try:
            return await ctx.store.update(info, updated, expected_revision=expected)
        except errors.Conflict:
            continue
    raise errors.Conflict.modified(info.plural, info.group, ri.name)


async def _eviction(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.Response:
    raw = await codec.read_body(request)
    body = (
        codec.decode_body(
            raw,
            codec.media_type(request.content_type) or codec.JSON,
            api_version="policy/v1",
            kind="Eviction",
        )
        if raw.strip()
        else {}
    )
    body = body if isinstance(body, dict) else {}
    options = body.get("deleteOptions") or {}
    dry_run = bool(options.get("dryRun") or request.query.getall("dryRun", []))
    pod = await ctx.store.get(info, ri.namespace, ri.name)
    # A CREATE of pods/eviction with the Eviction as its object; the pod's deletion that follows
    # is not admitted again (upstream's EvictionREST deletes with ValidateAllObjectFunc).
    attrs = admission.Attributes(
        info,
        "CREATE",
        ri.namespace,
        ri.name,
        "eviction",
        dry_run,
        view=_own_kind("eviction", "policy/v1", "Eviction"),
    )
    await ctx.admission.admit(ctx, attrs, body, None)
    async with ctx.admission.validate(ctx, attrs, body, None) as admitted:
        await admitted.committed()
    options = body.get("deleteOptions") or {}
    if not _can_ignore_pdb(pod):
        await _check_and_decrement_pdb(ctx, pod, dry_run=dry_run)
    delete_opts = rest.DeleteOptions()
    if "gracePeriodSeconds" in options:
        delete_opts.grace_period = int(options["gracePeriodSeconds"])
    pre = options.get("preconditions") or {}
    delete_opts.precondition_uid = str(pre.get("uid") or "")
    delete_opts.precondition_rv = str(pre.get("resourceVersion") or "")
    delete_opts.dry_run = dry_run
    if not dry_run and not pod["metadata"].get("deletionTimestamp"):
        pod = await _mark_disruption_target(ctx, info, pod)
        # Delete exactly the pod that was checked (and marked), as upstream's precondition does.
        delete_opts.precondition_uid = delete_opts.precondition_uid or pod["metadata"]["uid"]
    await rest.delete_object(ctx, info, ri.namespace, ri.name, delete_opts, admit=False)
    return codec.json_response(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
        status=201,
        headers=rest.warning_headers(attrs.warnings),
    )


# Upstream's eviction limits (pkg/registry/core/pod/storage/eviction.go).
MAX_DISRUPTED_POD_SIZE = 2000
_EVICTION_REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."


def _can_ignore_pdb(pod: dict[str, Any]) -> bool:
    """Finished, pending or already-deleting pods are evicted without consulting any budget."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def _pod_ready(pod: dict[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


async def _check_and_decrement_pdb(ctx: ServerContext, pod: dict[str, Any], *, dry_run: bool) -> None:
    """Refuse the eviction when the pod's budget allows no disruption; otherwise take one
    disruption from it and record the pod in status.disruptedPods, conditional on the budget's
    resourceVersion, so two concurrent evictions cannot both spend the last one."""
    pdb_info = ctx.registry.get("policy", "v1", "poddisruptionbudgets")
    if pdb_info is None:
        return
    namespace = pod["metadata"].get("namespace", "")
    labels = pod["metadata"].get("labels") or {}
    for _attempt in range(5):
        page = await ctx.store.list(pdb_info, namespace)
        matching = []
        for pdb in page.items:
            sel = (pdb.get("spec") or {}).get("selector")
            if sel is None:
                continue
            parsed = selectors.label_selector_from_dict(sel)
            if not parsed.empty and parsed.matches(labels):
                matching.append(pdb)
        if not matching:
            return
        if len(matching) > 1:
            raise errors.InternalError(
                message="This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
            )
        pdb = matching[0]
        status = pdb.get("status") or {}
        name = pdb["metadata"]["name"]
        policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
        if not _pod_ready(pod):
            # An unready pod does not count as healthy: evicting it cannot lower availability.
            if policy == "AlwaysAllow":
                return
            if int(status.get("currentHealthy", 0)) >= int(status.get("desiredHealthy", 0)) > 0:
                return
        if int(status.get("observedGeneration", 0)) < int(pdb["metadata"].get("generation", 0)):
            raise errors.TooManyRequests(
                message=_EVICTION_REFUSED,
                causes=[
                    errors.Cause(
                        "DisruptionBudget",
                        f"The disruption budget {name} is still being processed by the server.",
                    )
                ],
            )
        allowed = int(status.get("disruptionsAllowed", 0))
        if allowed < 0:
            raise errors.Forbidden(message="pdb disruptions allowed is negative")
        disrupted = dict(status.get("disruptedPods") or {})
        if len(disrupted) > MAX_DISRUPTED_POD_SIZE:
            raise errors.Forbidden(
                message="DisruptedPods map too big - too many evictions not confirmed by PDB controller"
            )
        if allowed == 0:
            raise errors.TooManyRequests(
                message=_EVICTION_REFUSED,
                causes=[
                    errors.Cause(
                        "DisruptionBudget",
                        f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} healthy pods and has {status.get('currentHealthy', 0)} currently",
                    )
                ],
            )
        if dry_run:
            return
        disrupted[pod["metadata"]["name"]] = ctx.now()
        updated = {**pdb, "status": {**status, "disruptionsAllowed": allowed - 1, "disruptedPods": disrupted}}
        try:
            await ctx.store.update(
                pdb_info, updated, expected_revision=int(pdb["metadata"]["resourceVersion"])
            )
            return
        except errors.Conflict:
            continue  # another eviction or the disruption controller moved it: decide again
    raise errors.Conflict(
        message=f'Operation cannot be fulfilled on poddisruptionbudgets.policy "{name}": the object has been modified; please apply your changes to the latest version and try again'
    )


async def _mark_disruption_target(
    ctx: ServerContext, info: ResourceInfo, pod: dict[str, Any]
) -> dict[str, Any]:
    """The DisruptionTarget condition an evicted pod carries while it terminates (1.26+)."""
    conditions = [
        c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "DisruptionTarget"
    ]
    conditions.append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting",
            "lastTransitionTime": ctx.now(),
        }
    )
    updated = {**pod, "status": {**(pod.get("status") or {}), "conditions": conditions}}
    try:
        return await ctx.store.update(
            info, updated, expected_revision=int(pod["metadata"]["resourceVersion"])
        )
    except errors.Conflict:
        return pod  # the pod moved; the delete below still removes it


# ---------------------------------------------------------------------------------------------
# namespaces/finalize and certificatesigningrequests/approval


async def _finalize(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.Response:
    body = codec.decode_body(
        await codec.read_body(request),
        codec.media_type(request.content_type) or codec.JSON,
        api_version="v1",
        kind="Namespace",
    )
    if not isinstance(body, dict):
        raise errors.BadRequest(message="Namespace must be an object")
    finalizers = (body.get("spec") or {}).get("finalizers") or []
    opts = rest.write_options(request)

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        updated = current  # a private decode of the stored object (`_write_raw`)
        updated.setdefault("spec", {})["finalizers"] = finalizers
        if not finalizers:
            updated["spec"].pop("finalizers")
        return updated

    result = await _write_raw(ctx, info, ri, mutate, opts)
    meta = result["metadata"]
    if meta.get("deletionTimestamp") and not finalizers and not meta.get("finalizers") and not opts.dry_run:
        result = await ctx.store.delete(info, "", ri.name, expected_revision=int(meta["resourceVersion"]))
    return codec.json_response(result)
