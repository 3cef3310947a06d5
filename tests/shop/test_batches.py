"""One SQLite transaction per batch of records: a record whose handler fails undoes only its own
work (its savepoint), the rest of the batch commits, and the failed one is dead-lettered. The
outbox goes out while the next batches are handled, each row once. Offsets are committed
now and then, and what was handled is committed when the service stops."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from brokerkit import InProcessBroker
from minikafka.shop.events import (
    ORDER_STATUS,
    ORDERS,
    PARTITIONS,
    Event,
    OrderCreated,
    OrderStatusChanged,
    dlq_topic,
    encode,
    use_registry,
)
from minikafka.shop.runtime import Service, ServiceRunner, Tx

from .conftest import read_topic, wait_for


class OrderReader:
    """A service of `orders` with nothing to seed and nothing to do after a batch."""

    topics = (ORDERS,)

    def setup(self, db: sqlite3.Connection) -> None:
        pass

    def after_batch(self, db: sqlite3.Connection) -> None:
        pass

    def concerns(self, event_type: str) -> bool:
        return True


class Ledger(OrderReader):
    """A service that writes a row per order, then fails for the order named `bad`."""

    name = "ledger"
    schema = "CREATE TABLE IF NOT EXISTS ledger (order_id TEXT PRIMARY KEY);"

    def handle(self, tx: Tx, event: Event) -> None:
        assert isinstance(event, OrderCreated)
        tx.db.execute("INSERT INTO ledger VALUES (?)", (event.order_id,))
        if event.order_id == "bad":
            raise RuntimeError("the ledger is on fire")


class Announcer(OrderReader):
    """A service that announces every order it reads as `created`."""

    name = "announcer"
    schema = ""

    def handle(self, tx: Tx, event: Event) -> None:
        assert isinstance(event, OrderCreated)
        tx.emit(OrderStatusChanged(order_id=event.order_id, user_id=event.user_id,
                                   items=event.items, total_price=event.total_price,
                                   status="created"))


def order(order_id: str) -> OrderCreated:
    return OrderCreated(order_id=order_id, user_id="u", total_price=1.0,
                        items=[{"product_id": "mug", "quantity": 1, "price": 1.0}])


class Fragile(Announcer):
    """An announcer with a bug: once `armed`, the next record raises outside any handler (in
    `concerns`), which fails its whole batch's transaction and stops the service."""

    def __init__(self) -> None:
        self.armed = threading.Event()

    def concerns(self, event_type: str) -> bool:
        if self.armed.is_set():
            raise RuntimeError("a bug outside the handler")
        return True


@contextmanager
def serving(service: Service, broker: InProcessBroker, db: Path,
            failed: list[BaseException] | None = None) -> Iterator[None]:
    """`service` runs in a thread while in the block, and has stopped after it (what it
    raised, if anything, goes to `failed`)."""
    stop = threading.Event()

    def serve() -> None:  # SQLite connections stay in the thread that made them
        runner = ServiceRunner(service, broker.bootstrap, db, retry_backoff=0.01,
                               session_timeout_ms=2000)
        runner.stop = stop
        try:
            runner.run()
        except Exception as exc:
            if failed is None:
                raise
            failed.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def _keep_producing(bootstrap: str, producing: threading.Event, then: str | None = None) -> None:
    """Orders o0, o1, … (every partition in turn) until `producing` is cleared; then, if
    given, the order named `then`."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    number = 0
    while producing.is_set():
        producer.produce(ORDERS, encode(order(f"o{number}")), f"o{number}".encode(),
                         partition=number % PARTITIONS)
        producer.poll(0)
        number += 1
        time.sleep(0.002)
    if then is not None:
        producer.produce(ORDERS, encode(order(then)), then.encode())
    assert producer.flush(10) == 0


@contextmanager
def orders_coming(broker: InProcessBroker, then: str | None = None
                  ) -> Iterator[Callable[[], None]]:
    """`_keep_producing` in a thread while in the block, which may stop it earlier with the
    function it is given."""
    assert broker.registry_url is not None
    use_registry(broker.registry_url)
    producing = threading.Event()
    producing.set()
    thread = threading.Thread(target=_keep_producing, args=(broker.bootstrap, producing, then))
    thread.start()

    def stop() -> None:
        producing.clear()
        thread.join()

    try:
        yield stop
    finally:
        stop()


def test_a_failing_record_undoes_only_its_own_work(tmp_path: Path,
                                                   shop_broker: InProcessBroker) -> None:
    assert shop_broker.registry_url is not None
    use_registry(shop_broker.registry_url)
    producer = Producer({"bootstrap.servers": shop_broker.bootstrap, "linger.ms": 100})
    values = {name: encode(order(name)) for name in ("a", "bad", "b")}
    for value in values.values():  # one key, one partition, one producer batch: one batch
        producer.produce(ORDERS, value, b"same-key")
    assert producer.flush(10) == 0
    with serving(Ledger(), shop_broker, tmp_path / "ledger.db"):
        letters = wait_for(lambda: read_topic(shop_broker.bootstrap, dlq_topic(ORDERS)), 30,
                           "the failing record's dead letter")
    assert [m.value() for m in letters] == [values["bad"]]
    db = sqlite3.connect(tmp_path / "ledger.db")
    assert sorted(r[0] for r in db.execute("SELECT order_id FROM ledger")) == ["a", "b"]
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0  # all published
    db.close()


def test_each_outbox_row_is_published_once(tmp_path: Path,
                                           shop_broker: InProcessBroker) -> None:
    """Batches follow each other while earlier outbox rows are still in flight: no row goes out
    twice, and every one is gone from the outbox once the broker has it."""
    assert shop_broker.registry_url is not None
    use_registry(shop_broker.registry_url)
    producer = Producer({"bootstrap.servers": shop_broker.bootstrap, "linger.ms": 0})
    names = [f"o{i}" for i in range(300)]
    with serving(Announcer(), shop_broker, tmp_path / "announcer.db"):
        for name in names:  # many small batches
            producer.produce(ORDERS, encode(order(name)), name.encode())
            producer.poll(0)
        assert producer.flush(10) == 0
        wait_for(lambda: len(read_topic(shop_broker.bootstrap, ORDER_STATUS)) >= len(names), 30,
                 "every order's announcement")
        time.sleep(0.5)  # time for a second copy, were one sent
    announced = [m.key() for m in read_topic(shop_broker.bootstrap, ORDER_STATUS)]
    assert sorted(announced) == sorted(n.encode() for n in names)
    db = sqlite3.connect(tmp_path / "announcer.db")
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    db.close()


def test_a_service_stopped_mid_stream_commits_what_it_handled(
        tmp_path: Path, shop_broker: InProcessBroker) -> None:
    """While records keep coming, offsets are committed only every so often: a service stopped
    then commits, on its way out, exactly the records its transactions took in."""
    with orders_coming(shop_broker), serving(Announcer(), shop_broker,
                                             tmp_path / "announcer.db"):
        wait_for(lambda: len(read_topic(shop_broker.bootstrap, ORDER_STATUS)) >= 300, 30,
                 "the announcer to be under way")
    db = sqlite3.connect(tmp_path / "announcer.db")
    handled = db.execute("SELECT count(*) FROM processed").fetchone()[0]
    db.close()
    consumer = Consumer({"bootstrap.servers": shop_broker.bootstrap,
                         "group.id": "shop-announcer"})
    try:
        committed = consumer.committed([TopicPartition(ORDERS, p) for p in range(PARTITIONS)],
                                       timeout=10)
    finally:
        consumer.close()
    assert sum(max(tp.offset, 0) for tp in committed) == handled


def test_a_failed_batch_keeps_the_acknowledged_rows_to_delete(
        tmp_path: Path, shop_broker: InProcessBroker) -> None:
    """Rows the broker has acknowledged are deleted in the next batch's transaction: when that
    transaction fails, they are still deleted later (here: as the failed service stops), not
    left in the outbox to be sent again on the next start."""
    failed: list[BaseException] = []
    fragile = Fragile()
    with orders_coming(shop_broker, then="boom") as stop, serving(
            fragile, shop_broker, tmp_path / "announcer.db", failed):
        wait_for(lambda: len(read_topic(shop_broker.bootstrap, ORDER_STATUS)) >= 100, 30,
                 "the announcer to be under way")
        fragile.armed.set()  # the next record fails its batch (`boom`, if no other comes)
        stop()  # every batch before it had rows to delete
        wait_for(lambda: failed, 30, "the batch with `boom` to fail")
    announced = len(read_topic(shop_broker.bootstrap, ORDER_STATUS))
    db = sqlite3.connect(tmp_path / "announcer.db")
    handled, left = (db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                     for table in ("processed", "outbox"))
    db.close()
    assert announced == handled  # every committed batch's rows went out, each once
    assert left == 0


def test_a_revoked_partition_is_not_committed_after_its_new_owner_commits(
        tmp_path: Path, shop_broker: InProcessBroker) -> None:
    """A member's handled, not yet committed offsets are committed as its partitions are
    revoked, not later: a later commit would set back the offsets their new owner committed
    meanwhile. Here the new owner is a plain consumer of the group, which commits the end of
    what it is given as soon as it gets it."""
    taken: dict[int, int] = {}  # partition -> the offset its new owner committed

    def take(member: Consumer, partitions: list[TopicPartition]) -> None:
        ends = [TopicPartition(ORDERS, tp.partition,
                               watermarks.get_watermark_offsets(tp, timeout=5)[1])
                for tp in partitions]
        member.commit(offsets=ends, asynchronous=False)
        taken.update((tp.partition, tp.offset) for tp in ends)

    watermarks = Consumer({"bootstrap.servers": shop_broker.bootstrap, "group.id": "ends"})
    newcomer = Consumer({"bootstrap.servers": shop_broker.bootstrap,
                         "group.id": "shop-announcer", "enable.auto.commit": False,
                         "session.timeout.ms": 2000, "heartbeat.interval.ms": 500})
    try:
        with orders_coming(shop_broker), serving(Announcer(), shop_broker,
                                                 tmp_path / "announcer.db"):
            wait_for(lambda: len(read_topic(shop_broker.bootstrap, ORDER_STATUS)) >= 300, 30,
                     "the announcer to be under way")
            newcomer.subscribe([ORDERS], on_assign=take)
            deadline = time.monotonic() + 30
            while not taken and time.monotonic() < deadline:  # what it reads is left alone
                newcomer.poll(0.1)
            deadline = time.monotonic() + 2  # the announcer goes on consuming and committing
            while time.monotonic() < deadline:
                newcomer.poll(0.1)
            committed = newcomer.committed([TopicPartition(ORDERS, p) for p in taken],
                                           timeout=10)
    finally:
        newcomer.close()
        watermarks.close()
    assert {tp.partition: tp.offset for tp in committed} == taken
