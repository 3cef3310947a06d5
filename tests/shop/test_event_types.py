"""Every event's record says its type in a `ce_type` header (CloudEvents' Kafka binding's name),
so a service passes by the events it does not act on without decoding them; a record without
the header (older records, other producers) is decoded and told apart as before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from confluent_kafka import Producer

from brokerkit import InProcessBroker
from minikafka.shop.events import (
    ALL_TOPICS,
    ORDER_STATUS,
    OrderStatusChanged,
    decode,
    dlq_topic,
    encode,
    use_registry,
)
from minikafka.shop.inventory import InventoryService, write_catalogue

from .conftest import read_topic, start_shop, wait_for
from .test_batches import serving


def test_every_event_says_its_type_in_a_header(tmp_path: Path,
                                               shop_broker: InProcessBroker) -> None:
    shop = start_shop(tmp_path / "shop", shop_broker, {"mug": 10})
    try:
        order = {"order_id": "typed", "user_id": "u", "total_price": 2.0,
                 "items": [{"product_id": "mug", "quantity": 1, "price": 2.0}]}
        assert httpx.post(f"{shop.api_url}/orders", json=order).status_code == 202
        wait_for(lambda: len(read_topic(shop_broker.bootstrap, "notifications")) == 5, 30,
                 "the order's five notifications")
    finally:
        shop.stop()
    said = {}
    for topic in ALL_TOPICS:
        for record in read_topic(shop_broker.bootstrap, topic):
            event = decode(topic, record.value())
            assert dict(record.headers() or []) == {"ce_type": event.ce_type.encode()}
            said[event.ce_type] = said.get(event.ce_type, 0) + 1
    statuses = ("created", "confirmed", "paid", "shipped", "completed")
    assert said == {"OrderCreated": 1, "StockReserved": 1,
                    **{f"OrderStatusChanged.{status}": 1 for status in statuses},
                    **{f"NotificationSent.{status}": 1 for status in statuses}}


def test_inventory_passes_by_what_it_does_not_act_on_without_decoding_it(
        tmp_path: Path, shop_broker: InProcessBroker) -> None:
    """A record typed as a status inventory ignores is not even decoded (rubbish in its value
    goes unnoticed); untyped, the same rubbish is decoded and dead-lettered; a new order is
    reserved for typed or not."""
    assert shop_broker.registry_url is not None
    use_registry(shop_broker.registry_url)

    def created(order_id: str) -> bytes:
        return encode(OrderStatusChanged(
            order_id=order_id, user_id="u", status="created", total_price=2.0,
            items=[{"product_id": "mug", "quantity": 1, "price": 2.0}]))

    producer = Producer({"bootstrap.servers": shop_broker.bootstrap})
    for key, value, headers in (
            (b"paid-rubbish", b"rubbish", [("ce_type", b"OrderStatusChanged.paid")]),
            (b"untyped-rubbish", b"rubbish", None),
            (b"typed", created("typed"), [("ce_type", b"OrderStatusChanged.created")]),
            (b"untyped", created("untyped"), None)):
        producer.produce(ORDER_STATUS, value, key, headers=headers)
    assert producer.flush(10) == 0
    catalogue = write_catalogue(tmp_path / "catalogue.json", {"mug": 10})
    with serving(InventoryService(catalogue), shop_broker, tmp_path / "inventory.db"):
        wait_for(lambda: len(read_topic(shop_broker.bootstrap, "inventory")) == 2, 30,
                 "two reservations")
    letters = read_topic(shop_broker.bootstrap, dlq_topic(ORDER_STATUS))
    assert [letter.key() for letter in letters] == [b"untyped-rubbish"]
    db = sqlite3.connect(tmp_path / "inventory.db")
    assert sorted(db.execute("SELECT order_id, state FROM reservations")) == [
        ("typed", "reserved"), ("untyped", "reserved")]
    db.close()
