"""Events a service cannot handle go to `<topic>.dlq` with the reason and their original bytes,
and the partition they sat on keeps moving: bytes that are no record of a registered schema
(not the registry's wire format, an unknown schema id, invalid against the schema) as much as
valid events a handler refuses."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from confluent_kafka import Producer

from brokerkit import InProcessBroker
from minikafka.shop.events import (
    INVENTORY,
    ORDERS,
    StockReserved,
    dlq_topic,
    encode,
    use_registry,
)
from minikafka.shop.monitor import BrokerProbe
from minikafka.shop.serde import subject_of

from .conftest import read_topic, start_shop, wait_for


def test_malformed_and_unhandleable_events_are_dead_lettered(
        tmp_path: Path, shop_broker: InProcessBroker, probe: BrokerProbe) -> None:
    shop = start_shop(tmp_path / "shop", shop_broker, {"mug": 10})
    try:
        assert shop_broker.registry_url is not None
        orders_id = use_registry(shop_broker.registry_url)[subject_of(ORDERS)]
        wire = b"\x00" + orders_id.to_bytes(4, "big")
        bad = {  # key -> (value, the reason given, as a regular expression)
            b"bad-1": (b"\x00{not json at all",
                       f"unknown schema id {int.from_bytes(b'{not', 'big')}$"),
            b"bad-2": (b'{"type": "OrderCreated"}', re.escape(
                "not in the schema registry's wire format (magic byte 0, schema id, payload)")),
            b"bad-3": (wire + b'{"type": "OrderCreated"}',
                       f"not valid against the schema of '{ORDERS}': "
                       r"OrderCreated\.\w+: Field required"),
            # The JSON parser's own words (pydantic-core's).
            b"bad-4": (wire + b"{not json", f"schema id {orders_id}: "
                       "Invalid JSON: key must be a string at line 1 column 2"),
        }
        stranger = encode(StockReserved(order_id="nobody", items=[]))
        producer = Producer({"bootstrap.servers": shop_broker.bootstrap})
        for key, (value, _) in bad.items():
            producer.produce(ORDERS, value, key, partition=0)
        producer.produce(INVENTORY, stranger, b"nobody")
        producer.flush(10)
        good = {"order_id": "after-the-bad-ones", "user_id": "u", "total_price": 2.0,
                "items": [{"product_id": "mug", "quantity": 1, "price": 2.0}]}
        assert httpx.post(f"{shop.api_url}/orders", json=good).status_code == 202

        wait_for(lambda: probe.dead_letters()[dlq_topic(ORDERS)] == len(bad) and
                 probe.dead_letters()[dlq_topic(INVENTORY)] == 1, 20, "five dead letters")
        letters = read_topic(shop_broker.bootstrap, dlq_topic(ORDERS))
        assert sorted(letter.key() or b"" for letter in letters) == list(bad)
        for letter in letters:
            value, reason = bad[letter.key() or b""]
            assert letter.value() == value
            headers = {k: v.decode() for k, v in letter.headers() or []}
            assert headers["dlq.service"] == "orders" and headers["dlq.topic"] == ORDERS
            assert re.match(reason, headers["dlq.reason"]), headers["dlq.reason"]
        [letter] = read_topic(shop_broker.bootstrap, dlq_topic(INVENTORY))
        assert letter.value() == stranger
        assert dict(letter.headers())["dlq.reason"] == b"unknown order 'nobody'"

        # The partitions moved on: the good order went all the way.
        wait_for(lambda: httpx.get(f"{shop.api_url}/orders/after-the-bad-ones").json().get(
            "status") == "completed", 20, "the good order to complete")
        assert probe.dead_letters() == {"orders.dlq": len(bad), "inventory.dlq": 1,
                                        "order-status.dlq": 0, "restocks.dlq": 0}
    finally:
        shop.stop()
