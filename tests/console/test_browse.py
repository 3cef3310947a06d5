"""The message browser's API: all partitions merged by time or one, either order, from an
offset or a time, filters, bounded pages and scans, export."""

from __future__ import annotations

import base64
import json
import time
import urllib.request

from confluent_kafka import Producer

from .conftest import Console
from .test_api import refusal
from .test_slips import _topic

BASE = int(time.time() * 1000) - 3_600_000  # within retention: older would be deleted


def _produce_timed(console: Console, topic: str, count: int, partitions: int) -> None:
    """Record i goes to partition i % partitions, at time BASE + i, with a header."""
    producer = Producer({"bootstrap.servers": console.broker.bootstrap})
    for i in range(count):
        parity = b"even" if i % 2 == 0 else b"odd"
        producer.produce(topic, key=f"k{i}", value=json.dumps({"i": i}), partition=i % partitions,
                         timestamp=BASE + i, headers=[("parity", parity)])
    assert producer.flush(10) == 0


def _numbers(page: dict) -> list[int]:
    return [json.loads(r["value"])["i"] for r in page["records"]]


def _pages(console: Console, path: str) -> list[list[int]]:
    """Every page of a browse, following the cursors."""
    pages, cursor = [], ""
    while True:
        page = console.get(path + (f"&cursor={cursor}" if cursor else ""))
        pages.append(_numbers(page))
        if page["done"]:
            return pages
        cursor = page["cursor"]


def test_all_partitions_merge_by_time_in_either_order(any_console: Console) -> None:
    console, kind = any_console, any_console.kind
    topic = f"browse.merge-{kind}"
    _topic(console, topic, 3)
    _produce_timed(console, topic, 10, 3)
    assert _pages(console, f"api/topics/{topic}/records?limit=4") == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert _pages(console, f"api/topics/{topic}/records?limit=4&newest=true") == [
        [9, 8, 7, 6], [5, 4, 3, 2], [1, 0]]
    assert _pages(console, f"api/topics/{topic}/records?limit=2&partition=1") == [
        [1, 4], [7]]
    at = f"api/topics/{topic}/records?start=timestamp&value={BASE + 5}&limit=3"
    assert _numbers(console.get(at)) == [5, 6, 7]
    assert _numbers(console.get(at + "&newest=1")) == [5, 4, 3]
    latest = console.get(f"api/topics/{topic}/records?start=end&limit=2")
    assert (_numbers(latest), latest["done"]) == ([8, 9], True)  # the topic's last 2
    assert latest["cursor"] == "0:4,1:3,2:3"  # a live tail goes on from the ends
    assert _numbers(console.get(
        f"api/topics/{topic}/records?partition=0&start=offset&value=2&newest=1")) == [6, 3, 0]


def test_filters_on_key_value_and_headers_across_partitions(any_console: Console) -> None:
    console, kind = any_console, any_console.kind
    topic = f"browse.filters-{kind}"
    _topic(console, topic, 2)
    _produce_timed(console, topic, 12, 2)
    path = f"api/topics/{topic}/records?"
    assert _numbers(console.get(path + "header=parity:%20odd")) == [1, 3, 5, 7, 9, 11]
    assert _numbers(console.get(path + "key=K1")) == [1, 10, 11]
    assert _numbers(console.get(path + "value_has=%22i%22:%201&newest=1")) == [11, 10, 1]
    assert _numbers(console.get(path + "q=k1&header=even")) == [10]


def test_a_page_is_bounded_and_says_where_its_scan_stopped(any_console: Console) -> None:
    """A filter matching only the last record of ~10 MiB: the first page stops at the scan
    limit (8 MiB) with nothing, and says so; its cursor finds the record."""
    console, kind = any_console, any_console.kind
    topic = f"browse.big-{kind}"
    _topic(console, topic)
    producer = Producer({"bootstrap.servers": console.broker.bootstrap,
                         "message.max.bytes": 200_000})
    for i in range(100):
        producer.produce(topic, value=(b"needle" if i == 99 else b"hay") + b"." * 100_000)
        producer.poll(0)
    assert producer.flush(10) == 0
    first = console.get(f"api/topics/{topic}/records?value_has=needle")
    assert (first["records"], first["stopped"], first["done"]) == ([], "scan limit", False)
    assert 8 * 2**20 <= first["scanned_bytes"] < 9 * 2**20
    second = console.get(f"api/topics/{topic}/records?value_has=needle&cursor={first['cursor']}")
    ((record,),) = [second["records"]]
    assert (record["offset"], record["size"], record["truncated"]) == (99, 100_006, True)
    assert len(record["value"]) == len(base64.b64decode(record["value_b64"])) == 16 * 1024
    backwards = console.get(f"api/topics/{topic}/records?value_has=hay&newest=1&limit=3")
    assert [r["offset"] for r in backwards["records"]] == [98, 97, 96]
    assert refusal(console, "GET", f"api/topics/{topic}/records?limit=501")[0] == 422


def test_export_is_json_lines_with_whole_values(any_console: Console) -> None:
    console, kind = any_console, any_console.kind
    topic = f"browse.export-{kind}"
    _topic(console, topic, 2)
    _produce_timed(console, topic, 6, 2)
    console.call("POST", f"api/topics/{topic}/records", {"value": "x" * 20_000})
    with urllib.request.urlopen(console.url + f"api/topics/{topic}/export?newest=1",
                                timeout=10) as response:
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="{topic}.jsonl"')
        lines = [json.loads(line) for line in response.read().splitlines()]
    assert lines[0]["value"] == "x" * 20_000  # newest first, whole
    assert [json.loads(r["value"])["i"] for r in lines[1:]] == [5, 4, 3, 2, 1, 0]
    assert set(lines[1]) == {"topic", "partition", "offset", "timestamp", "key", "value", "size",
                             "headers"}
    with urllib.request.urlopen(console.url + f"api/topics/{topic}/export?header=odd",
                                timeout=10) as response:
        assert len(response.read().splitlines()) == 3
    assert refusal(console, "GET", "api/topics/no.such/export")[0] == 404


def test_purge_one_partition(any_console: Console) -> None:
    console, kind = any_console, any_console.kind
    topic = f"browse.purge-{kind}"
    _topic(console, topic, 2)
    _produce_timed(console, topic, 6, 2)
    answer = console.call("DELETE", f"api/topics/{topic}/records?partition=1")
    assert [(p["start_offset"], p["end_offset"]) for p in answer["partitions"]] == [(0, 3), (3, 3)]
