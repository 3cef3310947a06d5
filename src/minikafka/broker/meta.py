"""The broker's identity in its data directory (`meta.properties`, as Kafka keeps it).

The cluster id is made once and kept, so clients that cache it see the same cluster after a
restart; the node id is always 0 (one node is broker and controller).
"""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

NODE_ID = 0
META_FILE = "meta.properties"


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so a crash leaves the old or the new file, never a torn one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_properties(path: Path) -> dict[str, str]:
    props = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


def load_cluster_id(data_dir: Path) -> str:
    """The cluster id stored in the data directory, created on first start."""
    path = data_dir / META_FILE
    if path.exists():
        cluster_id = read_properties(path).get("cluster.id")
        if cluster_id:
            return cluster_id
    # Kafka's format: a random UUID in URL-safe base64 without padding (22 characters).
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    write_atomically(path, f"version=1\ncluster.id={cluster_id}\nnode.id={NODE_ID}\n")
    return cluster_id
