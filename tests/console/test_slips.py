"""The console slips of issue 15, one test each: each failed before its fix."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from playwright.sync_api import expect

from .conftest import Console
from .test_api import refusal
from .test_browser import WAIT_MS, consume, produce


def _topic(console: Console, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": console.broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions)])[name].result(10)


def _wait_for_member(console: Console, consumer: Consumer, group: str) -> None:
    for _ in range(80):
        consumer.poll(0.25)
        if any(g["group"] == group and g["members"] for g in console.get("api/groups")):
            return
    raise AssertionError(f"{group} got no member")


def test_a_missing_topic_is_a_not_found_page(any_console: Console, page: Any) -> None:
    console = any_console
    page.goto(console.url + "#/topics/no.such.topic")
    expect(page.locator("#title")).to_have_text("Not found")
    expect(page).to_have_title("Not found · minikafka")
    expect(page.locator("#view")).to_contain_text("unknown topic 'no.such.topic'")
    expect(page.locator("#delete-topic")).to_have_count(0)
    expect(page.get_by_text("Browse messages")).to_have_count(0)


def test_the_not_found_page_has_its_own_tab_title(any_console: Console, page: Any) -> None:
    console = any_console
    page.goto(console.url + "#/topics")
    expect(page).to_have_title("Topics · minikafka")
    page.goto(console.url + "#/no/such/page")
    expect(page.locator("#title")).to_have_text("Not found")
    expect(page).to_have_title("Not found · minikafka")


def test_reset_offsets_is_disabled_while_members_are_active(any_console: Console,
                                                          page: Any) -> None:
    console, k = any_console, any_console.kind
    topic = group = f"slips.reset-{k}"
    _topic(console, topic)
    consumer = Consumer({"bootstrap.servers": console.broker.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        _wait_for_member(console, consumer, group)
        page.goto(console.url + f"#/groups/{group}")
        expect(page.locator("[data-card=members] .value")).to_have_text("1", timeout=WAIT_MS)
        expect(page.locator("#reset-offsets")).to_be_disabled()
        expect(page.locator("#reset-hint")).to_contain_text("active members")
        expect(page.locator("#delete-group")).to_be_disabled()
    finally:
        consumer.close()
    expect(page.locator("#reset-offsets")).to_be_enabled(timeout=WAIT_MS)  # live
    expect(page.locator("#reset-hint")).to_have_text("")


def test_timestamps_carry_their_time_zone(any_console: Console, browser: Any) -> None:
    """In a browser far from UTC, a record's time is ISO 8601 in UTC, marked Z."""
    console, k = any_console, any_console.kind
    _topic(console, f"slips.time-{k}")
    console.call("POST", f"api/topics/slips.time-{k}/records", {"value": "tick"})
    (record,) = console.get(f"api/topics/slips.time-{k}/records")["records"]
    iso = datetime.fromtimestamp(record["timestamp"] / 1000, UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    context = browser.new_context(timezone_id="Asia/Kolkata")
    try:
        page = context.new_page()
        page.goto(console.url + f"#/messages?topic=slips.time-{k}")
        expect(page.locator("tr[data-offset='0']")).to_contain_text(iso, timeout=WAIT_MS)
    finally:
        context.close()


def test_purge_a_topic(any_console: Console, page: Any) -> None:
    console, k = any_console, any_console.kind
    topic = f"slips.purge-{k}"
    _topic(console, topic, 2)
    produce(console.broker.bootstrap, topic, ["a", "b", "c"], partition=0)
    produce(console.broker.bootstrap, topic, ["d"], partition=1)
    page.goto(console.url + f"#/topics/{topic}")
    expect(page.locator("[data-card=Messages] .value")).to_have_text("4")
    page.click("#purge-topic")
    expect(page.locator("#confirm-text")).to_contain_text("every record")
    page.click("#confirm-ok")
    expect(page.locator("[data-card=Messages] .value")).to_have_text("0", timeout=WAIT_MS)
    starts = [(p["start_offset"], p["end_offset"])
              for p in console.get(f"api/topics/{topic}")["partitions"]]
    assert starts == [(3, 3), (1, 1)]


def test_delete_a_group(any_console: Console, page: Any) -> None:
    console, k = any_console, any_console.kind
    topic = group = f"slips.delete-{k}"
    _topic(console, topic)
    produce(console.broker.bootstrap, topic, ["x"])
    consumer = Consumer({"bootstrap.servers": console.broker.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        consume(consumer, 1)
        status, answer = refusal(console, "DELETE", f"api/groups/{group}")
        assert (status, answer["code"]) == (409, "NON_EMPTY_GROUP")
    finally:
        consumer.close()
    page.goto(console.url + f"#/groups/{group}")
    expect(page.locator("[data-card=state]")).to_contain_text("Empty", timeout=WAIT_MS)
    page.click("#delete-group")
    page.click("#confirm-ok")
    expect(page).to_have_url(console.url + "#/groups")
    expect(page.locator(f"tr[data-group='{group}']")).to_have_count(0)
    assert group not in [g["group"] for g in console.get("api/groups")]


def test_throughput_history_is_served_with_the_first_load(any_console: Console, page: Any) -> None:
    """The broker samples its rates each second (a bounded history), so a fresh page's chart
    starts with the recent past rather than empty."""
    console, k = any_console, any_console.kind
    _topic(console, f"slips.rates-{k}")
    produce(console.broker.bootstrap, f"slips.rates-{k}", ["x" * 10] * 20)
    deadline = time.monotonic() + 15  # a loaded machine samples late; the bound is the point
    history = console.get("api/overview")["history"]
    while (len(history) < 2 or not sum(sample["records_in"] for sample in history)) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
        history = console.get("api/overview")["history"]
    assert 2 <= len(history) <= 300
    assert sum(sample["records_in"] for sample in history) > 0
    page.goto(console.url)
    expect(page.locator("#live-text")).to_have_text("live", timeout=WAIT_MS)
    # The stream's first event brings the history (the page may say "live" just before it).
    page.wait_for_function(f"live.history.length >= {len(history)}", timeout=WAIT_MS)
