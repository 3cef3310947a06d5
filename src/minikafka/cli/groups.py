"""`minikafka groups`: consumer groups (kafka-consumer-groups.sh), on a broker or a data directory.

Over the wire everything goes through confluent-kafka's AdminClient (ListGroups, DescribeGroups,
OffsetFetch, OffsetCommit, DeleteGroups, ListOffsets), so it works against Apache Kafka as well as
against ours. On a data directory the groups are the embedded consumers' (committed offsets and
live members). Errors are one line, raised as KafkaError or ValueError for `cli.main` to print.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ErrorCode, KafkaError
from ..offset_reset import ResetTo, check_reset, reset_target
from .backends import (
    TIMEOUT,
    EmbeddedBackend,
    KafkaBackend,
    admin_result,
    backend_for,
    connection_arguments,
    group_state_name,
    print_table,
)

if TYPE_CHECKING:
    from ..log import LogManager

TopicPartition = tuple[str, int]
OffsetSpec = str | int  # "earliest", "latest" or a timestamp (ms)


def add_groups_parser(sub: Any) -> None:
    """Register `groups` on the CLI's subcommands (`sub` from `add_subparsers`)."""
    common = connection_arguments()
    groups = sub.add_parser("groups", help="list, describe, reset offsets of, delete consumer "
                            "groups")
    actions = groups.add_subparsers(dest="action", required=True, metavar="ACTION")
    listed = actions.add_parser("list", parents=[common], help="every group and its state")
    listed.add_argument("--json", action="store_true", help="print JSON")
    describe = actions.add_parser("describe", parents=[common],
                                  help="state, members and their assignment, offsets and lag")
    describe.add_argument("group")
    describe.add_argument("--json", action="store_true", help="print JSON")
    reset = actions.add_parser("reset-offsets", parents=[common],
                               help="move a group's committed offsets (dry run unless --execute)")
    reset.add_argument("group")
    reset.add_argument("--topic", required=True, metavar="TOPIC[:P,P...]",
                       help="the topic, or some of its partitions")
    to = reset.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="the log start offset")
    to.add_argument("--to-latest", action="store_true", help="the log end offset")
    to.add_argument("--to-offset", type=int, metavar="N",
                    help="offset N (kept within the log's start and end)")
    to.add_argument("--to-datetime", metavar="ISO",
                    help="the first record at or after this time, e.g. 2024-05-01T12:00:00Z "
                    "(local time without a zone); the log end if none")
    reset.add_argument("--execute", action="store_true", help="commit the new offsets")
    delete = actions.add_parser("delete", parents=[common],
                                help="delete a group without members, with its offsets")
    delete.add_argument("group")
    groups.set_defaults(func=cmd_groups)


@dataclass(slots=True)
class Member:
    member_id: str
    instance_id: str | None = None
    client_id: str | None = None
    host: str | None = None
    partitions: list[TopicPartition] = field(default_factory=list)


@dataclass(slots=True)
class Group:
    state: str  # Kafka's spelling: Stable, Empty, Dead, ...
    assignor: str | None = None
    members: list[Member] = field(default_factory=list)


class Groups(Protocol):
    """What the commands need, over the wire or on a data directory."""

    def list_groups(self) -> list[tuple[str, str]]: ...
    def describe(self, group: str) -> Group: ...
    def committed(self, group: str) -> dict[TopicPartition, int]: ...
    def offsets(self, partitions: Iterable[TopicPartition], spec: OffsetSpec
                ) -> dict[TopicPartition, int]: ...
    def partitions(self, topic: str) -> list[int]: ...
    def alter(self, group: str, offsets: Mapping[TopicPartition, int]) -> None: ...
    def delete(self, group: str) -> None: ...


class GroupsAdmin:
    """The few admin calls the commands need, each waited for with errors made one line."""

    def __init__(self, backend: KafkaBackend) -> None:
        self.admin = backend.admin

    def list_groups(self) -> list[tuple[str, str]]:
        """(group id, state) of every group."""
        listed = admin_result(self.admin.list_consumer_groups(request_timeout=TIMEOUT))
        return sorted((g.group_id, group_state_name(g.state)) for g in listed.valid)

    def describe(self, group: str) -> Group:
        return self.describe_many([group])[group]

    def describe_many(self, groups: Sequence[str]) -> dict[str, Group]:
        """Several groups in one DescribeGroups."""
        if not groups:
            return {}
        futures = self.admin.describe_consumer_groups(list(groups), request_timeout=TIMEOUT)
        return {group: _group(admin_result(future)) for group, future in futures.items()}

    def committed(self, group: str) -> dict[TopicPartition, int]:
        from confluent_kafka import ConsumerGroupTopicPartitions

        found = admin_result(self.admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=TIMEOUT)[group])
        return {(tp.topic, tp.partition): tp.offset for tp in found.topic_partitions
                if tp.offset >= 0}

    def offsets(self, partitions: Iterable[TopicPartition], spec: OffsetSpec
                ) -> dict[TopicPartition, int]:
        """ListOffsets: each partition's offset for `spec`."""
        from confluent_kafka import TopicPartition as KafkaTopicPartition
        from confluent_kafka.admin import OffsetSpec as KafkaOffsetSpec

        kafka_spec = (KafkaOffsetSpec.for_timestamp(spec) if isinstance(spec, int)
                      else getattr(KafkaOffsetSpec, spec)())
        wanted = {KafkaTopicPartition(t, p): kafka_spec for t, p in partitions}
        if not wanted:
            return {}
        futures = self.admin.list_offsets(wanted, request_timeout=TIMEOUT)
        return {(tp.topic, tp.partition): admin_result(f).offset for tp, f in futures.items()}

    def partitions(self, topic: str) -> list[int]:
        """All partitions of `topic`, from metadata for every topic (naming it may create it)."""
        meta = self.admin.list_topics(timeout=TIMEOUT).topics.get(topic)
        if meta is None or meta.error is not None:
            raise KafkaError(f"unknown topic {topic!r}", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        return sorted(meta.partitions)

    def alter(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        from confluent_kafka import ConsumerGroupTopicPartitions
        from confluent_kafka import TopicPartition as KafkaTopicPartition

        request = ConsumerGroupTopicPartitions(
            group, [KafkaTopicPartition(t, p, o) for (t, p), o in offsets.items()])
        altered = admin_result(self.admin.alter_consumer_group_offsets(
            [request], request_timeout=TIMEOUT)[group])
        for tp in altered.topic_partitions:
            if tp.error is not None:
                raise KafkaError(f"{tp.topic}-{tp.partition}: {tp.error.str()}")

    def delete(self, group: str) -> None:
        admin_result(self.admin.delete_consumer_groups([group], request_timeout=TIMEOUT)[group])


def _group(found: Any) -> Group:
    """confluent-kafka's ConsumerGroupDescription as a Group."""
    return Group(group_state_name(found.state), found.partition_assignor or None, [
        Member(m.member_id, m.group_instance_id, m.client_id, m.host,
               [(tp.topic, tp.partition) for tp in m.assignment.topic_partitions])
        for m in found.members])


class EmbeddedGroups:
    """The groups of the embedded consumers on a data directory: their committed offsets, and
    their live members (each holds a lock while it lives; which partitions a member reads is
    not recorded, so members are listed without them)."""

    def __init__(self, log: LogManager) -> None:
        self.log = log

    def _live(self, group: str) -> list[str]:
        from ..client.membership import group_dir, live_member_ids

        return live_member_ids(group_dir(self.log.data_dir, group))

    def list_groups(self) -> list[tuple[str, str]]:
        from ..client.membership import NAME_FILE, groups_dir

        names = set(self.log.offsets.groups())
        names.update(path.read_text() for path in groups_dir(self.log.data_dir).glob(
            f"*/{NAME_FILE}"))
        found = [(name, self.describe(name).state) for name in sorted(names)]
        return [(name, state) for name, state in found if state != "Dead"]

    def describe(self, group: str) -> Group:
        live = self._live(group)
        state = "Stable" if live else "Empty" if self.log.offsets.fetch(group) else "Dead"
        return Group(state, None, [Member(member_id) for member_id in live])

    def committed(self, group: str) -> dict[TopicPartition, int]:
        return {tp: o.offset for tp, o in self.log.offsets.fetch(group).items()}

    def offsets(self, partitions: Iterable[TopicPartition], spec: OffsetSpec
                ) -> dict[TopicPartition, int]:
        found = {}
        for topic, index in partitions:
            partition = self.log.partition(topic, index)
            if isinstance(spec, int):
                hit = partition.offset_for_timestamp(spec)
                found[(topic, index)] = -1 if hit is None else hit[0]
            else:
                found[(topic, index)] = (partition.log_start_offset if spec == "earliest"
                                         else partition.high_watermark)
        return found

    def partitions(self, topic: str) -> list[int]:
        return list(range(self.log.topic_config(topic).partitions))

    def alter(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        from ..log import LEADER_EPOCH, OffsetAndMetadata

        self.log.offsets.commit(group, {tp: OffsetAndMetadata(offset, LEADER_EPOCH)
                                        for tp, offset in offsets.items()})

    def delete(self, group: str) -> None:
        state = self.describe(group).state
        if state == "Dead":
            raise KafkaError(f"consumer group {group!r} does not exist",
                             ErrorCode.GROUP_ID_NOT_FOUND)
        if state != "Empty":
            raise KafkaError(f"consumer group {group!r} has live members: stop them first",
                             ErrorCode.NON_EMPTY_GROUP)
        self.log.offsets.delete(group)


def cmd_groups(args: argparse.Namespace) -> int:
    backend = backend_for(args)
    try:
        admin: Groups
        if isinstance(backend, EmbeddedBackend):
            admin = EmbeddedGroups(backend.log)
        else:
            assert isinstance(backend, KafkaBackend)
            admin = GroupsAdmin(backend)
        if args.action == "list":
            found = admin.list_groups()
            if args.json:
                print(json.dumps([{"group": g, "state": s} for g, s in found]))
            else:
                print_table(("GROUP", "STATE"), found)
        elif args.action == "describe":
            describe(admin, args.group, as_json=args.json)
        elif args.action == "reset-offsets":
            reset_offsets(admin, args)
        elif args.action == "delete":
            admin.delete(args.group)
            print(f"deleted consumer group {args.group!r}")
    finally:
        backend.close()
    return 0


def describe(admin: Groups, group: str, *, as_json: bool = False) -> None:
    """Members and what they own, then every partition that is committed or owned, with lag."""
    description = admin.describe(group)
    committed = admin.committed(group)
    if description.state == "Dead" and not committed:
        raise KafkaError(f"consumer group {group!r} does not exist", ErrorCode.GROUP_ID_NOT_FOUND)
    owner = {tp: member for member in description.members for tp in member.partitions}
    partitions = sorted(set(committed) | set(owner))
    ends = admin.offsets(partitions, "latest")
    rows = [(t, p, committed.get((t, p)), ends[(t, p)],
             ends[(t, p)] - committed[(t, p)] if (t, p) in committed else None,
             owner[(t, p)].member_id if (t, p) in owner else None) for t, p in partitions]
    if as_json:
        columns = ("topic", "partition", "current_offset", "log_end_offset", "lag", "member_id")
        print(json.dumps({"group": group, **asdict(description),
                          "offsets": [dict(zip(columns, row, strict=True)) for row in rows]}))
        return
    print(f"group {group!r}: {description.state}, assignor {description.assignor or '-'}, "
          f"{len(description.members)} member(s)")
    if description.members:
        print()
        print_table(("MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "PARTITIONS"), [
            (m.member_id, m.instance_id, m.client_id, m.host, _ranges(m.partitions) or None)
            for m in description.members])
    print()
    print_table(("TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER-ID"),
                 rows)


def _ranges(partitions: Iterable[TopicPartition]) -> str:
    """t-0, t-1, u-3 -> "t:0,1 u:3"."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        by_topic.setdefault(topic, []).append(partition)
    return " ".join(f"{t}:{','.join(map(str, ps))}" for t, ps in by_topic.items())


def _parse_topic(admin: Groups, spec: str) -> list[TopicPartition]:
    topic, _, wanted = spec.partition(":")
    existing = admin.partitions(topic)
    if not wanted:
        return [(topic, p) for p in existing]
    try:
        chosen = sorted({int(p) for p in wanted.split(",")})
    except ValueError:
        raise ValueError(f"--topic expects TOPIC or TOPIC:P,P..., got {spec!r}") from None
    missing = set(chosen) - set(existing)
    if missing:
        raise KafkaError(f"topic {topic!r} has no partition {min(missing)}",
                         ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    return [(topic, p) for p in chosen]


def _parse_datetime(text: str) -> int:
    """ISO 8601 -> epoch ms; a time without a zone is local time, as Kafka's tool reads it."""
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise ValueError(f"--to-datetime expects an ISO 8601 time such as "
                         f"2024-05-01T12:00:00Z, got {text!r}") from None


def reset_plan(admin: Groups, partitions: Sequence[TopicPartition], to: ResetTo,
               value: int | None = None) -> dict[TopicPartition, int]:
    """Where a reset `to` "earliest", "latest", "offset" `value` or "timestamp" `value` puts
    each partition (`reset_target`)."""
    check_reset(to, value)
    earliest = admin.offsets(partitions, "earliest")
    latest = admin.offsets(partitions, "latest")
    found = admin.offsets(partitions, value) if to == "timestamp" and value is not None else {}
    return {tp: reset_target(to, value, earliest[tp], latest[tp],
                             None if found.get(tp, -1) < 0 else found[tp])
            for tp in partitions}


def reset_offsets(admin: Groups, args: argparse.Namespace) -> None:
    """Plan (and with --execute, commit) new offsets; only a group without members can be
    reset, since a live one would overwrite them with its next commit."""
    at = _parse_datetime(args.to_datetime) if args.to_datetime is not None else None
    state = admin.describe(args.group).state
    if state not in ("Empty", "Dead"):
        raise KafkaError(f"offsets of group {args.group!r} can only be reset while it has no "
                         f"members, but it is {state}", ErrorCode.NON_EMPTY_GROUP)
    partitions = _parse_topic(admin, args.topic)
    if args.to_earliest:
        plan = reset_plan(admin, partitions, "earliest")
    elif args.to_latest:
        plan = reset_plan(admin, partitions, "latest")
    elif at is not None:
        plan = reset_plan(admin, partitions, "timestamp", at)
    else:  # --to-offset: the parser requires one of the four
        plan = reset_plan(admin, partitions, "offset", args.to_offset)
    if args.execute:
        admin.alter(args.group, plan)
    print_table(("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"),
                 [(args.group, t, p, plan[(t, p)]) for t, p in partitions])
    if not args.execute:
        print("dry run: nothing was changed (add --execute to commit these offsets)",
              file=sys.stderr)
