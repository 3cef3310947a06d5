"""Small metadata files (topic configs, snapshots, ids): replaced atomically and durably, and read
back with an error that names the file when its content is damaged. Also where a failed write
(ENOSPC, EDQUOT, EIO, ...) becomes a `KafkaStorageError`, for every write the log makes."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

from ..errors import ErrorCode, InvalidConfigError, KafkaError, KafkaStorageError

T = TypeVar("T")


class MetadataFileError(KafkaError):
    """A metadata file exists but cannot be understood: left alone for an operator to look at.
    What it describes is unavailable meanwhile, as Kafka answers for a log dir it cannot read."""

    code = ErrorCode.KAFKA_STORAGE_ERROR


def storage_error(exc: OSError, doing: str) -> KafkaStorageError:
    """The error a failed write raises, saying what was being written and why it failed."""
    return KafkaStorageError(f"{doing} failed: {exc.strerror or exc}")


def write_fully(fd: int, data: bytes | bytearray | memoryview, position: int) -> None:
    """pwrite all of `data` at `position`. A short write is followed by one for the rest, which
    either completes it or raises the reason (ENOSPC...); the caller cuts back what was written.
    """
    written = os.pwrite(fd, data, position)
    while written < len(data):
        more = os.pwrite(fd, memoryview(data)[written:], position + written)
        if more == 0:
            raise OSError(errno.EIO, f"pwrite wrote nothing at {position + written}")
        written += more


def write_atomically(path: Path, data: str | bytes) -> None:
    """Replace `path` so that a crash at any moment leaves the old or the new content, never a
    torn mix: write a temporary file beside it, fsync it, rename it over, fsync the directory
    (without that last step the rename itself may not survive a power loss). A failure leaves
    the old content and no temporary file, and raises KafkaStorageError."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_directory(path.parent)
    except OSError as exc:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise storage_error(exc, f"writing {path}") from exc


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
