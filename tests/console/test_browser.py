"""The console in a real browser against a real broker, with real Kafka clients beside it."""

from __future__ import annotations

import json
import time
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from playwright.sync_api import expect

from .conftest import Console, screenshot

WAIT_MS = 10_000


def produce(bootstrap: str, topic: str, values: list[str], partition: int = 0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i, value in enumerate(values):
        producer.produce(topic, key=f"order-{i}", value=value, partition=partition)
    assert producer.flush(10) == 0


def consume(consumer: Consumer, count: int) -> None:
    """Read `count` records, then commit them."""
    read = 0
    deadline = time.monotonic() + 20
    while read < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            read += 1
    assert read == count
    consumer.commit(asynchronous=False)


def test_overview_shows_the_broker_and_updates_live(any_console: Console, page: Any) -> None:
    console, k = any_console, any_console.kind
    page.goto(console.url)
    expect(page.locator("[data-card=broker] .value")).to_have_text(console.broker.bootstrap)
    expect(page.locator("#live-text")).to_have_text("live", timeout=WAIT_MS)
    topics = int(page.locator("[data-card=topics] .value").inner_text())
    admin = AdminClient({"bootstrap.servers": console.broker.bootstrap})
    admin.create_topics([NewTopic(f"overview.live-{k}", 2)])[f"overview.live-{k}"].result(10)
    # No reload: the count comes over the live stream.
    expect(page.locator("[data-card=topics] .value")).to_have_text(str(topics + 1),
                                                                   timeout=WAIT_MS)
    expect(page.locator(f"tr[data-topic='overview.live-{k}']")).to_be_visible()
    screenshot(page, "overview")


def test_create_a_topic_produce_a_record_and_find_it(any_console: Console, page: Any) -> None:
    console, k = any_console, any_console.kind
    page.goto(console.url + "#/topics")
    page.fill("#new-topic-name", f"orders.browser-{k}")
    page.fill("#new-topic-partitions", "2")
    page.get_by_role("button", name="Create topic").click()
    expect(page.locator(f"tr[data-topic='orders.browser-{k}']")).to_be_visible()

    page.locator(f"tr[data-topic='orders.browser-{k}']").get_by_role(
        "link", name="Browse", exact=True).click()
    page.click("#produce-panel summary")
    page.select_option("#produce-partition", "1")
    page.fill("#produce-key", "order-42")
    page.fill("#produce-value", json.dumps({"id": 42, "status": "created", "total": 9.5}))
    page.fill("#produce-headers", "source: console\ntrace: abc")
    page.click("#produce")
    expect(page.locator(".toast").first).to_have_text(
        f"Produced to orders.browser-{k}-1 at offset 0")
    row = page.locator("tr[data-offset='0']")
    expect(row).to_contain_text("order-42")
    expect(row).to_contain_text("source: console")
    # Rows are one line; opened, a JSON value is pretty-printed: one field per line.
    row.click()
    expect(page.locator("tr.detail pre.value").first).to_contain_text('"status": "created",\n')

    produce(console.broker.bootstrap, f"orders.browser-{k}",
            [json.dumps({"id": i, "status": "shipped" if i == 3 else "paid"}) for i in range(5)],
            partition=1)
    page.select_option("#msg-start", "beginning")
    page.fill("#msg-search", "SHIPPED")
    page.click("#msg-load")
    expect(page.locator("tbody tr[data-offset]")).to_have_count(1)
    expect(page.locator("tbody tr[data-offset]")).to_contain_text('"shipped"')
    page.fill("#msg-search", "")
    page.click("#msg-load")
    expect(page.locator("tbody tr[data-offset]")).to_have_count(6)
    screenshot(page, "messages")


def test_change_and_delete_a_topic(any_console: Console, page: Any) -> None:
    console, k = any_console, any_console.kind
    admin = AdminClient({"bootstrap.servers": console.broker.bootstrap})
    admin.create_topics([NewTopic(f"scratch.topic-{k}", 1)])[f"scratch.topic-{k}"].result(10)
    page.goto(console.url + f"#/topics/scratch.topic-{k}")
    page.fill("#partition-count", "3")
    page.click("#add-partitions")
    expect(page.locator("[data-card=Partitions] .value")).to_have_text("3")
    page.select_option("#retention", "3600000")
    page.click("#set-retention")
    expect(page.locator("[data-card=Retention] .value")).to_have_text("1h")
    assert console.get(f"api/topics/scratch.topic-{k}")["retention_ms"] == 3_600_000
    screenshot(page, "topic")

    page.click("#delete-topic")
    expect(page.locator("#confirm")).to_be_visible()
    page.click("#confirm-ok")
    expect(page).to_have_url(console.url + "#/topics")
    expect(page.locator(f"tr[data-topic='scratch.topic-{k}']")).to_have_count(0)
    assert f"scratch.topic-{k}" not in [t["name"] for t in console.get("api/topics")]


def test_group_lag_drops_live_as_the_consumer_reads(any_console: Console, page: Any) -> None:
    console, k = any_console, any_console.kind
    topic, group = f"orders.lag-{k}", f"billing-{k}"
    admin = AdminClient({"bootstrap.servers": console.broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(10)
    produce(console.broker.bootstrap, topic, [f"order {i}" for i in range(30)])
    consumer = Consumer({"bootstrap.servers": console.broker.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        consume(consumer, 10)
        page.goto(console.url + f"#/groups/{group}")
        expect(page.locator("[data-card=lag] .value")).to_have_text("20", timeout=WAIT_MS)
        expect(page.locator("[data-card=state]")).to_contain_text("Stable")
        expect(page.locator("[data-card=members] .value")).to_have_text("1")
        expect(page.locator(f"tr[data-tp='orders.lag-{k}-0']")).to_contain_text("rdkafka")
        screenshot(page, "group")

        consume(consumer, 20)
        expect(page.locator("[data-card=lag] .value")).to_have_text("0", timeout=WAIT_MS)
    finally:
        consumer.close()
    expect(page.locator("[data-card=state]")).to_contain_text("Empty", timeout=WAIT_MS)

    page.select_option("#reset-topic", topic)
    page.select_option("#reset-to", "earliest")
    page.click("#reset-offsets")
    expect(page.locator("#confirm-text")).to_contain_text(f"Every partition of orders.lag-{k}")
    page.click("#confirm-ok")
    expect(page.locator("[data-card=lag] .value")).to_have_text("30", timeout=WAIT_MS)
    page.goto(console.url + "#/groups")
    expect(page.locator(f"tr[data-group='{group}']")).to_contain_text("30")


def test_open_transactions_page_follows_a_transaction_live(console: Console, page: Any) -> None:
    topic = "orders.txn"
    admin = AdminClient({"bootstrap.servers": console.broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": console.broker.bootstrap,
                         "transactional.id": "checkout-1"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"order 1")
    producer.flush(10)
    page.goto(console.url + "#/transactions")
    row = page.locator("tr[data-transaction='checkout-1']")
    expect(row).to_contain_text("Ongoing", timeout=WAIT_MS)
    expect(row).to_contain_text(f"{topic}-0")
    screenshot(page, "transactions")
    producer.commit_transaction(30)
    expect(row).to_have_count(0, timeout=WAIT_MS)  # over the live stream
    page.goto(console.url + f"#/topics/{topic}")
    expect(page.locator("#view table").first).to_contain_text("Stable offset", timeout=WAIT_MS)


def test_message_browser_over_all_partitions(any_console: Console, page: Any) -> None:
    """All partitions merged by time, newest first, compact rows that open onto JSON, hex and
    base64 views, a header filter, export of what is shown, then a live tail."""
    console, k = any_console, any_console.kind
    topic = f"orders.browse-{k}"
    admin = AdminClient({"bootstrap.servers": console.broker.bootstrap})
    admin.create_topics([NewTopic(topic, 2)])[topic].result(10)
    producer = Producer({"bootstrap.servers": console.broker.bootstrap})
    for i in range(6):
        producer.produce(topic, key=f"k{i}", value=json.dumps({"i": i, "note": "x" * 400}),
                         partition=i % 2, timestamp=int(time.time() * 1000) - 60_000 + i,
                         headers=[("parity", b"odd" if i % 2 else b"even")])
    assert producer.flush(10) == 0

    page.goto(console.url + f"#/messages?topic={topic}")
    rows = page.locator("tbody tr.record")
    expect(rows).to_have_count(6)
    expect(rows.first).to_contain_text('{"i": 0')
    assert rows.first.bounding_box()["height"] < 45  # one line, however long the value

    page.select_option("#msg-order", "1")
    page.click("#msg-load")
    expect(rows.first).to_contain_text('{"i": 5')
    expect(rows.nth(1)).to_contain_text('{"i": 4')
    rows.first.click()
    detail = page.locator("tr.detail").first
    expect(detail.locator("pre.value").first).to_contain_text('"note": "xxx')
    detail.locator("[data-view=hex]").click()
    expect(detail.locator("pre.value").first).to_contain_text("7b 22 69 22 3a 20 35")  # {"i": 5
    detail.locator("[data-view=base64]").click()
    expect(detail.locator("pre.value").first).to_contain_text("eyJpIjogNSwg")
    expect(detail).to_contain_text("parity: odd")

    page.fill("#msg-header", "parity: odd")
    page.click("#msg-load")
    expect(rows).to_have_count(3)
    with page.expect_download() as download:
        page.click("#msg-export")
    lines = [json.loads(line) for line in
             open(download.value.path(), encoding="utf-8").read().splitlines()]  # noqa: SIM115
    assert [json.loads(r["value"])["i"] for r in lines] == [5, 3, 1]
    screenshot(page, "browser")

    page.click("#msg-tail")
    expect(page.locator("#msg-tail")).to_have_text("Stop tail")
    producer.produce(topic, value=b"fresh", partition=1, headers=[("parity", b"odd")])
    producer.produce(topic, value=b"filtered out", partition=0, headers=[("parity", b"even")])
    assert producer.flush(10) == 0
    expect(rows.first).to_contain_text("fresh", timeout=WAIT_MS)
    expect(page.locator("#msg-status")).to_contain_text("Live: 1 new record")
    expect(rows).to_have_count(4)
    page.click("#msg-tail")
    expect(page.locator("#msg-tail")).to_have_text("Live tail")


def test_a_remote_console_says_what_it_cannot_show(remote_console: Console, page: Any) -> None:
    page.goto(remote_console.url + "#/transactions")
    expect(page.locator("#unsupported")).to_contain_text("not shown for a remote cluster")
    expect(page.locator("#live-text")).to_have_text("live", timeout=WAIT_MS)
    expect(page.locator("#unsupported")).to_be_visible()  # the live stream leaves it be
    expect(page.locator("#metrics-link")).to_be_hidden()
    page.goto(remote_console.url + "#/")
    expect(page.locator("[data-card=out] .value")).to_have_text("—")
