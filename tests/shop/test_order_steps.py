"""The order service takes the steps that wait for no other service in one transaction: a
reservation moves the order on to `completed` (or to `rejected` by the payment) at once, each
status still published as its own OrderStatusChanged, in order. An order a previous version left
between those steps is taken on when the service starts."""

from __future__ import annotations

import json
import threading
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
from minikafka.shop.runtime import ServiceRunner, Tx, connect, transaction

from .conftest import event_of, read_topic, wait_for

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


@pytest.mark.parametrize(("left_in", "limit", "statuses"), [
    ("paid", 1000.0, ["shipped", "completed"]),
    ("shipped", 1000.0, ["completed"]),
    ("confirmed", 1000.0, ["paid", "shipped", "completed"]),
    ("confirmed", 500.0, ["rejected"]),
])
def test_an_order_left_between_steps_by_the_old_version_is_taken_on(
        tmp_path: Path, shop_broker: InProcessBroker, left_in: str, limit: float,
        statuses: list[str]) -> None:
    """The previous version took each step after the reservation on reading its own
    `order-status` event back, which this one no longer consumes: an order it left in
    `confirmed`, `paid` or `shipped` (its event on the topic, the next step not taken) is moved
    on to its end at start, with the events the old version would have published."""
    assert shop_broker.registry_url is not None
    use_registry(shop_broker.registry_url)
    path = tmp_path / "orders.db"
    ServiceRunner(OrderService(limit), shop_broker.bootstrap, path).db.close()  # the tables
    old = connect(path)
    steps = ["created", "confirmed", "paid", "shipped"]
    with transaction(old):  # the rows as the old version wrote them
        old.execute("INSERT INTO orders (order_id, user_id, items, total_price, status, "
                    "created_at, updated_at) VALUES ('o1', 'u', ?, 600.0, ?, 't0', 't1')",
                    (json.dumps([i.model_dump() for i in ITEMS]), left_in))
        old.executemany("INSERT INTO order_history (order_id, status, at) VALUES ('o1', ?, 't')",
                        [(s,) for s in steps[:steps.index(left_in) + 1]])
    old.close()

    stop = threading.Event()

    def new_version() -> None:  # in a thread of its own: SQLite connections stay in theirs
        runner = ServiceRunner(OrderService(limit), shop_broker.bootstrap, path)
        runner.stop = stop
        runner.run()

    thread = threading.Thread(target=new_version)
    thread.start()
    try:
        published = wait_for(lambda: read_topic(shop_broker.bootstrap, ORDER_STATUS), 20,
                             "the remaining steps' events on order-status")
    finally:
        stop.set()
        thread.join()
    assert [(e["order_id"], e["status"]) for e in map(event_of, published)] == [
        ("o1", s) for s in statuses]
    db = connect(path)
    assert db.execute("SELECT status FROM orders").fetchone()["status"] == statuses[-1]
    assert [r["status"] for r in db.execute("SELECT status FROM order_history ORDER BY rowid")
            ] == steps[:steps.index(left_in) + 1] + statuses
    db.close()
