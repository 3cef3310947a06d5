"""Small metadata files (topic configs, snapshots, ids): replaced atomically and durably, and read
back with an error that names the file when its content is damaged."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import ErrorCode, InvalidConfigError, KafkaError

T = TypeVar("T")


class MetadataFileError(KafkaError):
    """A metadata file exists but cannot be understood: left alone for an operator to look at.
    What it describes is unavailable meanwhile, as Kafka answers for a log dir it cannot read."""

    code = ErrorCode.KAFKA_STORAGE_ERROR


def write_atomically(path: Path, data: str | bytes) -> None:
    """Replace `path` so that a crash at any moment leaves the old or the new content, never a
    torn mix: write a temporary file beside it, fsync it, rename it over, fsync the directory
    (without that last step the rename itself may not survive a power loss)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """fsync a directory, so that the renames and new names in it survive a power loss."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_metadata(path: Path, parse: Callable[[str], T]) -> T:
    """`parse` the file's text; bad text (not UTF-8, not JSON, the wrong shape or values) raises
    MetadataFileError naming the file. A missing file raises FileNotFoundError as usual."""
    text = path.read_bytes()
    try:
        return parse(text.decode())
    except (ValueError, LookupError, TypeError, AttributeError, InvalidConfigError) as exc:
        raise MetadataFileError(f"metadata file {path} is damaged: {exc}") from exc
