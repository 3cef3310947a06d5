"""`minikafka groups` over the wire: describe shows the lag the clients left, reset-offsets plans
(dry run) before it commits (--execute), delete removes the group and its offsets."""

from __future__ import annotations

from confluent_kafka import Consumer, ConsumerGroupState

from broker.groups.members import DEFAULT_SESSION_TIMEOUT_MS
from broker.test_confluent import produce
from minikafka.cli.backends import group_state_name

from .conftest import InProcessBroker, create_topic, end_offsets, mk


def table(stdout: str, first_column: str) -> list[list[str]]:
    """The rows of the table whose header starts with `first_column`."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first_column])
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def offsets_table(broker: InProcessBroker, group: str) -> dict[int, tuple[str, str, str]]:
    """partition -> (current offset, log end offset, lag) as `groups describe` prints them."""
    described = mk(broker, "groups", "describe", group)
    assert described.returncode == 0, described.stderr
    return {int(row[1]): (row[2], row[3], row[4])
            for row in table(described.stdout, "TOPIC")}


def test_describe_lag_and_reset_offsets(broker: InProcessBroker, topic: str) -> None:
    group = topic
    create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, [b"v%d" % i for i in range(40)])
    ends = end_offsets(broker.bootstrap, topic, 2)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "client.id": "lag-checker", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50,
                         "session.timeout.ms": DEFAULT_SESSION_TIMEOUT_MS})
    consumer.subscribe([topic])
    consumed = {0: 0, 1: 0}
    try:
        while sum(consumed.values()) < 25:
            for msg in consumer.consume(25 - sum(consumed.values()), timeout=0.5):
                assert msg.error() is None, msg.error()
                consumed[msg.partition()] = msg.offset() + 1
        consumer.commit(asynchronous=False)

        described = mk(broker, "groups", "describe", group)
        assert described.returncode == 0, described.stderr
        assert f"group {group!r}: Stable, assignor range, 1 member(s)" in described.stdout
        [member] = table(described.stdout, "MEMBER-ID")
        assert member[1:] == ["-", "lag-checker", "/127.0.0.1", f"{topic}:0,1"]
        assert offsets_table(broker, group) == {
            p: (str(consumed[p]), str(ends[p]), str(ends[p] - consumed[p])) for p in (0, 1)}

        live = mk(broker, "groups", "reset-offsets", group, "--topic", topic, "--to-earliest")
        assert live.returncode == 1 and len(live.stderr.splitlines()) == 1
        assert "it is Stable" in live.stderr
    finally:
        consumer.close()

    dry = mk(broker, "groups", "reset-offsets", group, "--topic", topic, "--to-earliest")
    assert dry.returncode == 0, dry.stderr
    assert table(dry.stdout, "GROUP") == [[group, topic, "0", "0"], [group, topic, "1", "0"]]
    assert "dry run" in dry.stderr
    assert {p: row[0] for p, row in offsets_table(broker, group).items()} == {
        p: str(consumed[p]) for p in (0, 1)}  # unchanged

    done = mk(broker, "groups", "reset-offsets", group, "--topic", f"{topic}:1", "--to-offset",
              "3", "--execute")
    assert done.returncode == 0, done.stderr
    assert table(done.stdout, "GROUP") == [[group, topic, "1", "3"]]
    assert offsets_table(broker, group) == {
        0: (str(consumed[0]), str(ends[0]), str(ends[0] - consumed[0])),
        1: ("3", str(ends[1]), str(ends[1] - 3))}
    future = mk(broker, "groups", "reset-offsets", group, "--topic", topic, "--to-datetime",
                "2999-01-01T00:00:00Z", "--execute")  # no record that late: the log end
    assert table(future.stdout, "GROUP") == [[group, topic, str(p), str(ends[p])] for p in (0, 1)]

    assert [group, "Empty"] in table(mk(broker, "groups", "list").stdout, "GROUP")
    assert mk(broker, "groups", "delete", group).returncode == 0
    assert group not in mk(broker, "groups", "list").stdout.split()
    gone = mk(broker, "groups", "describe", group)
    assert gone.returncode == 1 and gone.stderr.strip() == (
        f"minikafka: error: consumer group {group!r} does not exist")


def test_group_states_in_kafkas_spelling() -> None:
    """The CLI and the console name confluent-kafka's group states as Kafka does (a group
    mid-rebalance is hard to hold still for a describe, so the naming is checked directly)."""
    assert [group_state_name(s) for s in ConsumerGroupState] == [
        "Unknown", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Empty"]
