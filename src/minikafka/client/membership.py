"""Embedded consumer groups: which live process reads which partition, decided by file locks.

Each member holds an exclusive `flock` on its own member file for as long as it lives, and one on
every partition it reads. The kernel drops a dead process's locks at once, so a waiting member
takes over its partitions on its next look, without a coordinator and without heartbeats. Members
share the partitions fairly: one that holds more than its share gives the excess back.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import uuid
from pathlib import Path

from ..log.manager import META

TopicPartition = tuple[str, int]
NAME_FILE = "group"  # the group id, for tools that list groups (the directory is its digest)


def groups_dir(data_dir: Path) -> Path:
    return Path(data_dir) / META / "groups"


def group_dir(data_dir: Path, group_id: str) -> Path:
    return groups_dir(data_dir) / hashlib.sha1(group_id.encode()).hexdigest()[:16]


def live_member_ids(group: Path, own: Path | None = None, *, clear_dead: bool = False
                    ) -> list[str]:
    """The members of the group at `group` whose lock is held (`own`: ours, held for sure);
    with `clear_dead`, files of dead members are cleared away."""
    live = []
    for path in sorted((group / "members").glob("*.lock")):
        if path == own:
            live.append(path.stem)
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            live.append(path.stem)
        else:
            if clear_dead:
                path.unlink(missing_ok=True)  # its owner died
        finally:
            os.close(fd)
    return live


class GroupMembership:
    def __init__(self, data_dir: Path, group_id: str) -> None:
        self.dir = group_dir(data_dir, group_id)
        (self.dir / "members").mkdir(parents=True, exist_ok=True)
        name = self.dir / NAME_FILE
        if not name.exists():
            name.write_text(group_id)
        self.member_id = uuid.uuid4().hex
        self._member_path = self.dir / "members" / f"{self.member_id}.lock"
        self._member_fd = os.open(self._member_path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._member_fd, fcntl.LOCK_EX)
        self.owned: dict[TopicPartition, int] = {}  # partition -> lock fd

    def live_members(self) -> int:
        """Members whose lock is held; files of dead members are cleared away."""
        return len(live_member_ids(self.dir, self._member_path, clear_dead=True))

    def rebalance(self, partitions: list[TopicPartition]) -> tuple[list[TopicPartition],
                                                                   list[TopicPartition]]:
        """Claim free partitions up to our fair share, give back any excess.

        Returns (gained, to_release); the caller commits `to_release` positions and then calls
        `release` for them.
        """
        wanted = set(partitions)
        share = math.ceil(len(partitions) / max(self.live_members(), 1)) if partitions else 0
        to_release = [tp for tp in self.owned if tp not in wanted]
        keep = [tp for tp in self.owned if tp in wanted]
        to_release += keep[share:]
        gained: list[TopicPartition] = []
        for tp in partitions:
            if len(keep) + len(gained) >= share:
                break
            if tp in self.owned:
                continue
            fd = os.open(self.dir / f"{tp[0]}-{tp[1]}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.owned[tp] = fd
            gained.append(tp)
        return gained, to_release

    def release(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            fd = self.owned.pop(tp, None)
            if fd is not None:
                os.close(fd)  # closing drops the flock

    def leave(self) -> None:
        self.release(list(self.owned))
        os.close(self._member_fd)
        self._member_path.unlink(missing_ok=True)
