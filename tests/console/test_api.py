"""The console's JSON API refuses what the Kafka protocol would refuse, with the reason."""

from __future__ import annotations

import json
import urllib.error
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from .conftest import Console


def refusal(console: Console, method: str, path: str, body: Any = None) -> tuple[int, dict]:
    with pytest.raises(urllib.error.HTTPError) as caught:
        console.call(method, path, body)
    return caught.value.code, json.loads(caught.value.read())


def test_unknown_and_duplicate_topics(console: Console) -> None:
    assert refusal(console, "GET", "api/topics/no.such.topic") == (
        404, {"error": "unknown topic 'no.such.topic'", "code": "UNKNOWN_TOPIC_OR_PARTITION"})
    console.call("POST", "api/topics", {"name": "api.twice", "partitions": 1})
    status, answer = refusal(console, "POST", "api/topics", {"name": "api.twice"})
    assert (status, answer["code"]) == (409, "TOPIC_ALREADY_EXISTS")
    status, answer = refusal(console, "POST", "api/topics", {"name": "bad name!"})
    assert (status, answer["code"]) == (400, "INVALID_TOPIC_EXCEPTION")
    status, answer = refusal(console, "POST", "api/topics/api.twice/partitions", {"count": 1})
    assert (status, answer["code"]) == (400, "INVALID_PARTITIONS")
    status, answer = refusal(console, "PATCH", "api/topics/api.twice/configs",
                             {"retention.ms": "soon"})
    assert (status, answer["code"]) == (400, "INVALID_CONFIG")


def test_produce_then_read_back_by_offset_and_time(console: Console) -> None:
    console.call("POST", "api/topics", {"name": "api.records", "partitions": 1})
    first = console.call("POST", "api/topics/api.records/records",
                         {"key": "k", "value": "one", "headers": [["h", "v"]]})
    second = console.call("POST", "api/topics/api.records/records", {"value": "two"})
    assert (first["offset"], second["offset"]) == (0, 1)
    page = console.get("api/topics/api.records/records?partition=0&start=offset&value=1")
    assert [r["value"] for r in page["records"]] == ["two"]
    assert (page["cursor"], page["done"]) == ("0:2", True)
    stamp = console.get("api/topics/api.records/records")["records"][0]["timestamp"]
    by_time = console.get(f"api/topics/api.records/records?partition=0&start=timestamp"
                          f"&value={stamp}&limit=1")
    assert by_time["records"][0]["headers"] == [["h", "v"]]


def test_offsets_of_a_live_group_cannot_be_reset(console: Console) -> None:
    console.call("POST", "api/topics", {"name": "api.live", "partitions": 1})
    consumer = Consumer({"bootstrap.servers": console.broker.bootstrap, "group.id": "api.live"})
    try:
        consumer.subscribe(["api.live"])
        for _ in range(40):  # until the group has its member
            consumer.poll(0.25)
            if any(g["group"] == "api.live" and g["members"] for g in console.get("api/groups")):
                break
        status, answer = refusal(console, "POST", "api/groups/api.live/reset-offsets",
                                 {"topic": "api.live", "to": "earliest"})
    finally:
        consumer.close()
    assert (status, answer["code"]) == (409, "NON_EMPTY_GROUP")
    assert "stop its consumers" in answer["error"]
    status, answer = refusal(console, "POST", "api/groups/api.live/reset-offsets",
                             {"topic": "api.live", "to": "offset"})
    assert (status, answer["code"]) == (400, "INVALID_REQUEST")


def test_resets_land_where_kafka_consumer_groups_puts_them(any_console: Console) -> None:
    """Both consoles (the broker's own, and `console -b` through the AdminClient) reset an
    idle group's offsets by Kafka's rules: an offset is kept within each log's start and end,
    a time moves to the first record at or after it, or to the end where there is none."""
    topic = group = f"api.reset.{any_console.kind}"
    any_console.call("POST", "api/topics", {"name": topic, "partitions": 2})
    producer = Producer({"bootstrap.servers": any_console.broker.bootstrap})
    for partition, stamps in ((0, (1000, 2000, 3000)), (1, (1000,))):
        for stamp in stamps:
            producer.produce(topic, b"r", partition=partition, timestamp=stamp)
    assert producer.flush(10) == 0
    committer = Consumer({"bootstrap.servers": any_console.broker.bootstrap, "group.id": group})
    try:
        committer.commit(offsets=[TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 1)],
                         asynchronous=False)
    finally:
        committer.close()

    def reset(to: str, value: int | None = None) -> dict[int, int]:
        group_now = any_console.call("POST", f"api/groups/{group}/reset-offsets",
                                     {"topic": topic, "to": to, "value": value})
        return {row["partition"]: row["committed"] for row in group_now["offsets"]}

    assert reset("offset", 99) == {0: 3, 1: 1}
    assert reset("offset", 1) == {0: 1, 1: 1}
    assert reset("earliest") == {0: 0, 1: 0}
    assert reset("timestamp", 2000) == {0: 1, 1: 1}
    assert reset("latest") == {0: 3, 1: 1}


def test_open_transactions_and_stable_offsets(console: Console) -> None:
    """An open transaction is listed, and holds its partition's stable offset at its first
    record until it commits."""

    console.call("POST", "api/topics", {"name": "api.txn", "partitions": 1})
    bootstrap = console.broker.bootstrap
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce("api.txn", b"before")
    plain.flush(10)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "api-tx"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce("api.txn", b"open")
    producer.flush(10)
    (listed,) = console.get("api/transactions")
    assert (listed["transactional_id"], listed["state"], listed["partitions"]) == (
        "api-tx", "Ongoing", ["api.txn-0"])
    (partition,) = console.get("api/topics/api.txn")["partitions"]
    assert (partition["stable_offset"], partition["end_offset"]) == (1, 2)
    producer.commit_transaction(30)
    assert console.get("api/transactions") == []
    (partition,) = console.get("api/topics/api.txn")["partitions"]
    assert partition["stable_offset"] == partition["end_offset"] == 3  # the marker included
