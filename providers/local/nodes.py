"""Finding the instance behind a Node: by its providerID, else by its name (the instance's Name
tag, private DNS name or id, which is how a node registers before the CCM gives it a providerID)."""

from __future__ import annotations

from providers.local.addresses import split_provider_id
from providers.local.cloud import INSTANCE
from providers.local.state import Record, Tx
from providers.model import InstanceState, NodeRef
from providers.tags import is_owned

__all__ = ["find_instance"]


def find_instance(tx: Tx, node: NodeRef, cluster_id: str = "") -> Record | None:
    """The instance, terminated ones included (callers decide what those mean); with
    `cluster_id`, only instances owned by that cluster."""
    if node.provider_id:
        _, instance_id = split_provider_id(node.provider_id)
        record = tx.get(INSTANCE, instance_id)
        if record is not None and cluster_id and not is_owned(record.tags, cluster_id):
            return None
        return record
    found = {r.id: r for r in tx.by_name(INSTANCE, node.name)}
    found.update({r.id: r for r in tx.where(INSTANCE, "private_dns", node.name)})
    if (by_id := tx.get(INSTANCE, node.name)) is not None:
        found[by_id.id] = by_id
    matches = [r for r in found.values() if not cluster_id or is_owned(r.tags, cluster_id)]
    # A name can be reused after termination: the live instance wins.
    matches.sort(key=lambda r: r.data["state"] == InstanceState.TERMINATED)
    return matches[0] if matches else None
