"""The broker's identity in its data directory (`meta.properties`, as Kafka keeps it).

The cluster id is made once and kept, so clients that cache it see the same cluster after a
restart; the node id (the node.id setting; one node is broker and controller) is recorded.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from ..log.durable import read_metadata, write_atomically

META_FILE = "meta.properties"


class NodeIdMismatchError(ValueError):
    """The data directory was formatted by another node.id (Kafka refuses to start too: the
    same log would answer as a different node)."""


def _properties(text: str) -> dict[str, str]:
    """The `key=value` lines of a properties file."""
    pairs = (line.partition("=") for line in text.splitlines())
    return {key.strip(): value.strip() for key, equals, value in pairs if equals}


def _cluster_id(text: str) -> tuple[str, str | None]:
    """The `cluster.id` and `node.id` (None if not recorded) of a properties file's text."""
    properties = _properties(text)
    if not properties.get("cluster.id"):
        raise ValueError("it has no cluster.id")
    return properties["cluster.id"], properties.get("node.id")


def load_cluster_id(data_dir: Path, node_id: int) -> str:
    """The cluster id stored in the data directory, created on first start. A damaged file is an
    error, not a new identity: clients would take a new cluster id for a different cluster."""
    path = data_dir / META_FILE
    try:
        cluster_id, recorded = read_metadata(path, _cluster_id)
    except FileNotFoundError:
        pass
    else:
        if recorded is not None and recorded != str(node_id):
            raise NodeIdMismatchError(
                f"{path} records node.id={recorded}, but this broker has node.id {node_id}: "
                f"start it with --node-id {recorded}, or use another data directory")
        return cluster_id
    # Kafka's format: a random UUID in URL-safe base64 without padding (22 characters).
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    write_atomically(path, f"version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n")
    return cluster_id
