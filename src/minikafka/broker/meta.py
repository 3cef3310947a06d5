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


def _cluster_id(text: str) -> str:
    """The `cluster.id` of a properties file's text."""
    for line in text.splitlines():
        key, equals, value = line.partition("=")
        if equals and key.strip() == "cluster.id" and value.strip():
            return value.strip()
    raise ValueError("it has no cluster.id")


def load_cluster_id(data_dir: Path, node_id: int) -> str:
    """The cluster id stored in the data directory, created on first start. A damaged file is an
    error, not a new identity: clients would take a new cluster id for a different cluster."""
    path = data_dir / META_FILE
    try:
        return read_metadata(path, _cluster_id)
    except FileNotFoundError:
        pass
    # Kafka's format: a random UUID in URL-safe base64 without padding (22 characters).
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    write_atomically(path, f"version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n")
    return cluster_id
