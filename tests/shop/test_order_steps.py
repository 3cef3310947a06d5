"""The order service takes the steps that wait for no other service in one transaction: a
reservation moves the order on to `completed` (or to `rejected` by the payment) at once, each
status still published as its own OrderStatusChanged, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from brokerkit import InProcessBroker
from minikafka.shop.events import (
    ORDER_STATUS,
    Item,
    OrderCreated,
    OrderStatusChanged,
    StockReserved,
    decode,
    use_registry,
)
from minikafka.shop.orders import OrderService
from minikafka.shop.runtime import ServiceRunner, Tx, transaction

ITEMS = [Item(product_id="mug", quantity=2, price=300.0)]


@pytest.mark.parametrize(("limit", "final", "statuses"), [
    (1000.0, "completed", ["created", "confirmed", "paid", "shipped", "completed"]),
    (500.0, "rejected", ["created", "confirmed", "rejected"]),
])
def test_a_reservation_takes_the_order_to_its_end(
        tmp_path: Path, shop_broker: InProcessBroker, limit: float, final: str,
        statuses: list[str]) -> None:
    assert shop_broker.registry_url is not None
    use_registry(shop_broker.registry_url)
    service = OrderService(limit)
    db = ServiceRunner(service, shop_broker.bootstrap, tmp_path / "orders.db").db
    for event in (OrderCreated(order_id="o1", user_id="u", items=ITEMS, total_price=600.0),
                  StockReserved(order_id="o1", items=ITEMS)):
        with transaction(db):  # each event in a batch of its own
            service.handle(Tx(db), event)
    order = db.execute("SELECT status FROM orders WHERE order_id = 'o1'").fetchone()
    emitted = [decode(topic, value) for topic, value in
               db.execute("SELECT topic, value FROM outbox ORDER BY id")]
    db.close()
    assert order["status"] == final
    assert all(isinstance(e, OrderStatusChanged) and e.order_id == "o1" for e in emitted)
    assert [e.status for e in emitted if isinstance(e, OrderStatusChanged)] == statuses
    assert ORDER_STATUS not in OrderService.topics  # nothing left to read back
