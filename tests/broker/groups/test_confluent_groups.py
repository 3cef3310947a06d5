"""confluent-kafka (librdkafka) consumer groups: sharing, takeover after a SIGKILL, resuming at
the commit (across broker restarts), and static membership."""

from __future__ import annotations

import signal
import time

import pytest
from confluent_kafka import Consumer

from broker.test_confluent import produce

from .conftest import BrokerProcess, InProcessBroker, create_topic, end_offsets
from .members import (
    DEFAULT_SESSION_TIMEOUT_MS,
    MemberProcess,
    assert_committed_never_redelivered,
    partitions_split,
    wait_until,
)

PARTITIONS = 6
SESSION_S = DEFAULT_SESSION_TIMEOUT_MS / 1000
STATIC_SESSION_MS = 4000  # several times a member restart (~0.5 s)


def consumed_everything(members: list[MemberProcess], ends: dict[int, int]) -> bool:
    seen = {(p, o) for m in members for p, o, _ in m.consumed}
    return all((p, o) in seen for p, end in ends.items() for o in range(end))


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_members_share_partitions_and_take_over_from_a_killed_one(
        broker: InProcessBroker, topic: str, assignor: str) -> None:
    create_topic(broker.bootstrap, topic, PARTITIONS)
    members = [MemberProcess(broker.bootstrap, topic, "sharing", assignor=assignor,
                             client_id=f"member-{i}") for i in range(3)]
    try:
        wait_until(lambda: partitions_split(members, PARTITIONS), 20, "three members share")
        produce(broker.bootstrap, topic, [b"first %d" % i for i in range(600)])
        ends = end_offsets(broker.bootstrap, topic, PARTITIONS)
        wait_until(lambda: consumed_everything(members, ends), 20, "the first records consumed")

        victim, survivors = members[0], members[1:]
        victim_partitions = victim.snapshot()[0]
        victim.kill()
        # Records arrive for the dead member's partitions before anyone notices it is gone.
        produce(broker.bootstrap, topic, [b"second %d" % i for i in range(600)])
        took = wait_until(lambda: partitions_split(survivors, PARTITIONS), SESSION_S + 10,
                          "the survivors take over")
        assert took < SESSION_S + 3, f"takeover took {took:.1f} s"
        assert victim_partitions <= frozenset().union(*(m.snapshot()[0] for m in survivors))

        ends = end_offsets(broker.bootstrap, topic, PARTITIONS)
        assert sum(ends.values()) == 1200
        wait_until(lambda: consumed_everything(members, ends), 20, "every record consumed")
        assert_committed_never_redelivered(members)
    finally:
        for member in members:
            member.stop()


def _consume(bootstrap: str, topic: str, group: str, count: int) -> set[tuple[int, int]]:
    """Join `group`, take `count` records, commit them, leave."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": DEFAULT_SESSION_TIMEOUT_MS,
                         "fetch.wait.max.ms": 50})
    consumer.subscribe([topic])
    got: set[tuple[int, int]] = set()
    try:
        deadline = time.monotonic() + 30
        while len(got) < count:
            assert time.monotonic() < deadline, f"only {len(got)} of {count} records"
            for msg in consumer.consume(count - len(got), timeout=0.5):
                assert msg.error() is None, msg.error()
                got.add((msg.partition(), msg.offset()))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("restart", [None, signal.SIGTERM, signal.SIGKILL],
                         ids=["no-restart", "sigterm", "sigkill"])
def test_a_new_consumer_resumes_at_the_commit(request: pytest.FixtureRequest, topic: str,
                                              restart: int | None) -> None:
    # Only a broker process can be signalled; without a restart the in-process one will do.
    broker: InProcessBroker | BrokerProcess = request.getfixturevalue(
        "own_broker" if restart is None else "broker_process")
    broker.start()
    create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, [b"r%d" % i for i in range(100)])
    ends = end_offsets(broker.bootstrap, topic, 2)
    everything = {(p, o) for p, end in ends.items() for o in range(end)}

    first = _consume(broker.bootstrap, topic, "resumer", 40)
    if restart is not None:
        broker.restart(restart)
    rest = _consume(broker.bootstrap, topic, "resumer", 60)
    assert first | rest == everything
    assert not first & rest


def test_a_restarted_static_member_causes_no_rebalance(broker: InProcessBroker, topic: str
                                                       ) -> None:
    create_topic(broker.bootstrap, topic, PARTITIONS)

    def start(i: int) -> MemberProcess:  # a session long enough for a slow restart
        return MemberProcess(broker.bootstrap, topic, "static", instance_id=f"static-{i}",
                             client_id=f"static-{i}", session_timeout_ms=STATIC_SESSION_MS)

    members = [start(0), start(1)]
    try:
        wait_until(lambda: partitions_split(members, PARTITIONS), 20, "two static members")
        time.sleep(0.5)  # let the last assignment events arrive
        restarted, other = members
        owned_before, _ = restarted.snapshot()
        other_before = other.snapshot()

        restarted.kill()  # a static member's restart: no LeaveGroup either way
        members[0] = start(0)
        wait_until(lambda: bool(members[0].snapshot()[0]), 15, "the static member is back")
        assert members[0].snapshot()[0] == owned_before
        time.sleep(STATIC_SESSION_MS / 1000)  # the old member's session has run out by now
        assert other.snapshot() == other_before  # no revocation, no new assignment
        assert members[0].snapshot() == (owned_before, 1)  # one assignment, the old one
    finally:
        for member in members:
            member.stop()
