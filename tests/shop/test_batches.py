"""One SQLite transaction per batch of records: a record whose handler fails undoes only its own
work (its savepoint), the rest of the batch commits, and the failed one is dead-lettered."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from confluent_kafka import Producer

from brokerkit import InProcessBroker
from minikafka.shop.events import ORDERS, Event, OrderCreated, dlq_topic, encode, use_registry
from minikafka.shop.runtime import ServiceRunner, Tx

from .conftest import read_topic, wait_for


class Ledger:
    """A service that writes a row per order, then fails for the order named `bad`."""

    name = "ledger"
    schema = "CREATE TABLE IF NOT EXISTS ledger (order_id TEXT PRIMARY KEY);"
    topics = (ORDERS,)

    def setup(self, db: sqlite3.Connection) -> None:
        pass

    def handle(self, tx: Tx, event: Event) -> None:
        assert isinstance(event, OrderCreated)
        tx.db.execute("INSERT INTO ledger VALUES (?)", (event.order_id,))
        if event.order_id == "bad":
            raise RuntimeError("the ledger is on fire")

    def after_batch(self, db: sqlite3.Connection) -> None:
        pass


def order(order_id: str) -> OrderCreated:
    return OrderCreated(order_id=order_id, user_id="u", total_price=1.0,
                        items=[{"product_id": "mug", "quantity": 1, "price": 1.0}])


def test_a_failing_record_undoes_only_its_own_work(tmp_path: Path,
                                                   shop_broker: InProcessBroker) -> None:
    assert shop_broker.registry_url is not None
    use_registry(shop_broker.registry_url)
    producer = Producer({"bootstrap.servers": shop_broker.bootstrap, "linger.ms": 100})
    values = {name: encode(order(name)) for name in ("a", "bad", "b")}
    for value in values.values():  # one key, one partition, one producer batch: one batch
        producer.produce(ORDERS, value, b"same-key")
    assert producer.flush(10) == 0
    stop = threading.Event()

    def serve() -> None:  # SQLite connections stay in the thread that made them
        runner = ServiceRunner(Ledger(), shop_broker.bootstrap, tmp_path / "ledger.db",
                               retry_backoff=0.01)
        runner.stop = stop
        runner.run()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        letters = wait_for(lambda: read_topic(shop_broker.bootstrap, dlq_topic(ORDERS)), 30,
                           "the failing record's dead letter")
    finally:
        stop.set()
        thread.join(30)
    assert [m.value() for m in letters] == [values["bad"]]
    db = sqlite3.connect(tmp_path / "ledger.db")
    assert sorted(r[0] for r in db.execute("SELECT order_id FROM ledger")) == ["a", "b"]
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0  # all published
    db.close()
