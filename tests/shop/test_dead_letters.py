"""Events a service cannot handle go to `<topic>.dlq` with the reason and their original bytes,
and the partition they sat on keeps moving."""

from __future__ import annotations

from pathlib import Path

import httpx
from confluent_kafka import Producer

from brokerkit import InProcessBroker
from minikafka.shop.events import INVENTORY, ORDERS, StockReserved, dlq_topic, encode
from minikafka.shop.monitor import BrokerProbe

from .conftest import read_topic, start_shop, wait_for


def test_malformed_and_unhandleable_events_are_dead_lettered(
        tmp_path: Path, shop_broker: InProcessBroker, probe: BrokerProbe) -> None:
    shop = start_shop(tmp_path / "shop", shop_broker.bootstrap, {"mug": 10})
    try:
        producer = Producer({"bootstrap.servers": shop_broker.bootstrap})
        garbage = b"\x00{not json at all"
        stranger = encode(StockReserved(order_id="nobody", items=[]))
        producer.produce(ORDERS, garbage, b"bad-1")
        producer.produce(INVENTORY, stranger, b"nobody")
        producer.flush(10)
        good = {"order_id": "after-the-bad-ones", "user_id": "u", "total_price": 2.0,
                "items": [{"product_id": "mug", "quantity": 1, "price": 2.0}]}
        assert httpx.post(f"{shop.api_url}/orders", json=good).status_code == 202

        wait_for(lambda: probe.dead_letters()[dlq_topic(ORDERS)] == 1 and
                 probe.dead_letters()[dlq_topic(INVENTORY)] == 1, 20, "two dead letters")
        [letter] = read_topic(shop_broker.bootstrap, dlq_topic(ORDERS))
        assert letter.value() == garbage and letter.key() == b"bad-1"
        headers = {k: v.decode() for k, v in letter.headers()}
        assert headers["dlq.service"] == "orders" and headers["dlq.topic"] == ORDERS
        assert headers["dlq.reason"].startswith("not a valid event")
        [letter] = read_topic(shop_broker.bootstrap, dlq_topic(INVENTORY))
        assert letter.value() == stranger
        assert dict(letter.headers())["dlq.reason"] == b"unknown order 'nobody'"

        # The partitions moved on: the good order went all the way.
        wait_for(lambda: httpx.get(f"{shop.api_url}/orders/after-the-bad-ones").json().get(
            "status") == "completed", 20, "the good order to complete")
        assert probe.dead_letters() == {"orders.dlq": 1, "inventory.dlq": 1,
                                        "order-status.dlq": 0, "restocks.dlq": 0}
    finally:
        shop.stop()
