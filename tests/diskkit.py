"""A small tmpfs that tests fill to get a real ENOSPC, bounded in size (RAM, not the shared disk).

tmpfs allocates whole pages: a write that extends a file into a new page needs a free page, one
that stays inside the file's last page needs none. `fill(leave=N)` leaves exactly N bytes (a
multiple of the page size) for everything else, with a preallocated filler file; `use_inodes`
leaves a number of files that can still be created.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PAGE = 4096
SIZE = 8 * 1024 * 1024
INODES = 256  # files and directories it can hold
FILLER = "filler"


class SmallDisk:
    """A mounted tmpfs at `path`; its filler file lives beside what the test puts there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / FILLER

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Grow or shrink the filler until exactly `leave` bytes are free."""
        assert leave % PAGE == 0, "tmpfs frees and allocates whole pages"
        fd = os.open(self.filler, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            change = self.free_bytes() - leave
            if change > 0:
                os.posix_fallocate(fd, size, change)
            elif change < 0:
                os.ftruncate(fd, size + change)
        finally:
            os.close(fd)
        assert self.free_bytes() == leave

    def use_inodes(self, leave: int) -> None:
        """Create empty files until only `leave` more files can be created."""
        made = len(list(self.path.glob(f"{FILLER}-*")))
        while os.statvfs(self.path).f_favail > leave:
            (self.path / f"{FILLER}-{made}").touch()
            made += 1

    def release(self) -> None:
        """Free the space and the inodes again."""
        self.filler.unlink(missing_ok=True)
        for path in self.path.glob(f"{FILLER}-*"):
            path.unlink()


def mounted(path: Path) -> SmallDisk:
    """Mount a small tmpfs at `path`, or skip the test saying why it cannot."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill needs root (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},nr_inodes={INODES}", "tmpfs",
                           str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    return SmallDisk(path)


def unmount(disk: SmallDisk) -> None:
    """Lazily: a file a failed test left open must not keep the mount (and its RAM) alive."""
    subprocess.run(["umount", "-l", str(disk.path)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A small tmpfs at `tmp_path / "data"`, unmounted afterwards whatever happened."""
    disk = mounted(tmp_path / "data")
    try:
        yield disk
    finally:
        unmount(disk)
