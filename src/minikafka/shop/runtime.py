"""The consumer loop every shop service runs, and the SQLite store behind it.

For each batch of records, ONE SQLite transaction; in it, for each record (a savepoint of its own,
so that a failing record undoes only its own work): decode it, check its `event_id` against the
events already handled, apply the service's effect, remember the `event_id`, and write the events
it causes to an outbox table. Only after that transaction commits is the outbox published and are
the batch's offsets committed.
So a record redelivered after a crash (or a rebalance) finds its `event_id` and has no second
effect, and an event caused by it can never be lost: the outbox is published after the commit
and kept until the broker has acknowledged it (a crash in between publishes it again, with the
same `event_id`, which the next service ignores).
Neither waits for the broker: the next batch is handled while the outbox is in flight and the
offsets are committed (a wait of a round trip each per batch, before), and the rows the broker
has acknowledged meanwhile are deleted in the next batch's transaction. Offsets are committed
every COMMIT_INTERVAL while records keep coming, as soon as none do, and as partitions are
revoked (theirs, before their next owner starts).

A record that cannot be decoded goes to `<topic>.dlq` at once; one whose handler keeps failing
goes there after `max_attempts`. Either way its offset moves on, so it never blocks a partition.
Dead letters keep the original key and value bytes; the reason travels in headers, as Kafka
Connect's dead-letter queues do.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from types import FrameType
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from ..heap import freeze_start_up
from .clients import ensure_topics, make_consumer, make_producer
from .events import CE_TYPE, Event, InvalidEvent, decode, dlq_topic, encode, topic_of

log = logging.getLogger("minikafka.shop")

# Offsets are committed at most this often while records keep coming (at once when none do): a
# commit per batch of a few records cost more than the records (redelivery after a crash or a
# rebalance, the price of a later commit, is ignored by the event ids anyway).
COMMIT_INTERVAL = 0.1  # seconds

_STORE_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    key TEXT PRIMARY KEY,           -- an event_id, or topic:partition:offset of a dead letter
    at REAL NOT NULL
) WITHOUT ROWID;                    -- one b-tree to write per event, not a table and its index
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB,
    headers TEXT NOT NULL DEFAULT '[]'
);
"""


def connect(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) that waits for locks.

    WAL lets readers (the API, the live view) read while a service writes; two instances of a
    service share one database file and serialise their writes through BEGIN IMMEDIATE.
    synchronous=NORMAL syncs the WAL at checkpoints, not at each COMMIT: a committed batch
    survives a killed process (the shop's kill tests) but not power loss or an OS crash, which
    can roll back the last batches (the file stays consistent) after their outbox was published
    and their offsets committed, leaving the database behind what the service already said.
    """
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    db.row_factory = sqlite3.Row
    return db


@contextmanager
def _atomic(db: sqlite3.Connection, begin: str, done: str, *undo: str
            ) -> Iterator[sqlite3.Connection]:
    db.execute(begin)
    try:
        yield db
    except BaseException:
        for statement in undo:
            db.execute(statement)
        raise
    db.execute(done)


def transaction(db: sqlite3.Connection) -> AbstractContextManager[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
    return _atomic(db, "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")


def savepoint(db: sqlite3.Connection) -> AbstractContextManager[sqlite3.Connection]:
    """One record's share of the batch's transaction: undone alone on any exception."""
    return _atomic(db, "SAVEPOINT record", "RELEASE record", "ROLLBACK TO record",
                   "RELEASE record")


class Reject(Exception):
    """Raised by a handler for an event it can never handle: dead-lettered without retries."""


class Tx:
    """What a handler gets: the open transaction, and a way to cause events."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def emit(self, event: Event) -> None:
        """Publish `event` (under its key, its type in a header) once this transaction has
        committed."""
        self.db.execute("INSERT INTO outbox (topic, key, value, headers) VALUES (?, ?, ?, ?)",
                        (topic_of(event), event.key.encode(), encode(event),
                         _type_header(event.ce_type)))

    def dead_letter(self, msg: Message, service: str, reason: str, attempts: int) -> None:
        headers = [("dlq.reason", reason), ("dlq.service", service),
                   ("dlq.topic", msg.topic()), ("dlq.partition", str(msg.partition())),
                   ("dlq.offset", str(msg.offset())), ("dlq.attempts", str(attempts))]
        self.db.execute("INSERT INTO outbox (topic, key, value, headers) VALUES (?, ?, ?, ?)",
                        (dlq_topic(_topic(msg)), msg.key(), msg.value(), json.dumps(headers)))


class Service(Protocol):
    """One concern of the shop: its tables, the topics it reads, what an event does."""

    name: str
    schema: str

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics it consumes (a class attribute in each service)."""

    def setup(self, db: sqlite3.Connection) -> None:
        """Runs once at start, after the schema exists (seeding, say)."""

    def concerns(self, event_type: str) -> bool:
        """Whether an event of this type (`Event.ce_type`) may have an effect here: one that
        cannot is passed by, neither handled nor remembered (a savepoint and a row less per
        event), nor decoded when its record says its type."""

    def handle(self, tx: Tx, event: Event) -> None:
        """Apply `event`; raise Reject for an event that can never be handled."""

    def after_batch(self, db: sqlite3.Connection) -> None:
        """Work done outside the per-event transaction (delivery to the outside world)."""


class ServiceRunner:
    """Runs a Service against a broker until `stop` is set (SIGTERM/SIGINT set it)."""

    def __init__(self, service: Service, bootstrap: str, db_path: str | Path, *,
                 max_attempts: int = 3, retry_backoff: float = 0.05,
                 session_timeout_ms: int = 10_000) -> None:
        self.service = service
        self.bootstrap = bootstrap
        self.db = connect(db_path)
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.session_timeout_ms = session_timeout_ms
        self.group = f"shop-{service.name}"
        self.stop = threading.Event()
        self._sent_upto = 0  # outbox rows up to this id are with the producer
        self._acked: list[int] = []  # outbox rows the broker has, to delete
        self._positions: dict[tuple[str, int], int] = {}  # handled, offsets not yet committed
        self._revoked_in_batch: set[tuple[str, int]] = set()  # while fetching the batch in hand
        self.db.executescript(_STORE_SCHEMA + service.schema)
        service.setup(self.db)

    def run(self, batch: int = 500) -> None:
        ensure_topics(self.bootstrap)
        self.producer = make_producer(self.bootstrap, self.group)
        consumer = make_consumer(self.bootstrap, self.group, self.group,
                                 self.session_timeout_ms)
        consumer.subscribe(list(self.service.topics), on_revoke=self._revoked)
        log.info("%s: consuming %s as group %s", self.service.name,
                 ", ".join(self.service.topics), self.group)
        committed_at = time.monotonic()
        try:
            while not self.stop.is_set():
                messages = next_batch(consumer, batch)
                handled: dict[tuple[str, int], int] = {}
                repeats = 0
                if messages or self._acked:
                    with self._forgetting_acked():
                        for msg in messages:
                            if msg.error():
                                log.warning("%s: %s", self.service.name, msg.error())
                                continue
                            repeats += not self.process(msg)
                            handled[_topic(msg), msg.partition() or 0] = (msg.offset() or 0) + 1
                    self._positions.update(handled)
                for revoked in self._revoked_in_batch:  # records fetched before the revoke
                    self._positions.pop(revoked, None)
                self._revoked_in_batch.clear()
                if repeats:
                    log.info("%s: ignored %d redelivered event(s)", self.service.name, repeats)
                self.service.after_batch(self.db)
                self.publish_outbox()
                if self._positions and (not messages or
                                        time.monotonic() - committed_at >= COMMIT_INTERVAL):
                    self._commit(consumer, self._positions)
                    self._positions, committed_at = {}, time.monotonic()
        finally:
            self.publish_outbox()
            if self._positions:
                self._commit(consumer, self._positions)
                self._positions = {}
            consumer.close()
            self.producer.flush(10)
            with self._forgetting_acked():
                pass
            self.db.close()

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit, and forget, what was handled of partitions this member is giving up, before
        their next owner starts (as Kafka's documentation has it): committed later, the offsets
        could set back those the next owner committed meanwhile."""
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._revoked_in_batch |= revoked
        giving_up = {tp: self._positions.pop(tp) for tp in revoked & self._positions.keys()}
        if giving_up:
            self._commit(consumer, giving_up, wait=True)

    def process(self, msg: Message) -> bool:
        """Handle one record exactly once in effect, or dead-letter it; False for a repeat.
        Runs inside the batch's transaction."""
        said = said_type(msg)
        if said is not None and not self.service.concerns(said):
            return True
        try:
            event = decode(_topic(msg), msg.value())
        except InvalidEvent as exc:
            return self._dead_letter(msg, str(exc), attempts=1)
        if said is None and not self.service.concerns(event.ce_type):
            return True
        for attempt in range(1, self.max_attempts + 1):
            try:
                with savepoint(self.db) as db:
                    if self._seen(db, str(event.event_id)):
                        return False
                    self.service.handle(Tx(db), event)
                return True
            except Reject as exc:
                return self._dead_letter(msg, str(exc), attempts=attempt)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("%s: attempt %d at %s failed: %s", self.service.name, attempt,
                            event.event_id, reason)
                if attempt == self.max_attempts:
                    return self._dead_letter(msg, f"failed {attempt} times, last: {reason}",
                                             attempt)
                time.sleep(self.retry_backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable: the last attempt returns")

    def _seen(self, db: sqlite3.Connection, key: str) -> bool:
        """True if `key` was handled before; otherwise records it (in the caller's transaction)."""
        inserted = db.execute("INSERT OR IGNORE INTO processed (key, at) VALUES (?, ?)",
                              (key, time.time())).rowcount
        return inserted == 0

    def _dead_letter(self, msg: Message, reason: str, attempts: int) -> bool:
        """Send `msg` to its dead-letter topic once; False if it was sent there before."""
        log.warning("%s: dead-lettering %s[%d]@%d: %s", self.service.name, msg.topic(),
                    msg.partition(), msg.offset(), reason)
        with savepoint(self.db) as db:
            if self._seen(db, f"{msg.topic()}:{msg.partition()}:{msg.offset()}"):
                return False
            Tx(db).dead_letter(msg, self.service.name, reason, attempts)
        return True

    def publish_outbox(self, limit: int = 2000) -> None:
        """Hand the producer what committed transactions caused and it does not have yet, oldest
        first. Each row is deleted once the broker has acknowledged it; a row it failed to
        deliver is sent again, with those after it.

        Two instances sharing the database may both send a row: the copies carry the same
        event_id, and whoever consumes them ignores the second.
        """
        rows = self.db.execute("SELECT id, topic, key, value, headers FROM outbox WHERE id > ? "
                               "ORDER BY id LIMIT ?", (self._sent_upto, limit)).fetchall()
        for row in rows:
            self.producer.produce(row["topic"], row["value"], row["key"],
                                  headers=_headers(row["headers"]),
                                  on_delivery=functools.partial(self._delivered, row["id"]))
            self._sent_upto = row["id"]
        self.producer.poll(0)  # acknowledgements that have arrived

    def _delivered(self, row_id: int, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self._acked.append(row_id)
        else:
            log.warning("%s: publishing failed, will retry: %s", self.service.name, err)
            self._sent_upto = min(self._sent_upto, row_id - 1)

    @contextmanager
    def _forgetting_acked(self) -> Iterator[None]:
        """A transaction that begins by deleting the outbox rows the broker has. They are
        forgotten once it has committed, not before: if it rolls back, the next one deletes
        them (the broker's acknowledgements come only while publishing, between batches)."""
        acked = len(self._acked)
        with transaction(self.db):
            self.db.executemany("DELETE FROM outbox WHERE id = ?",
                                [(i,) for i in self._acked[:acked]])
            yield
        del self._acked[:acked]

    def _commit(self, consumer: Consumer, positions: dict[tuple[str, int], int],
                wait: bool = False) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:  # waited for on a revoke only (close() waits for the others): a commit lost to a
            # rebalance or a crash means redelivery only
            if wait:  # (confluent-kafka's types need each literal)
                consumer.commit(offsets=offsets, asynchronous=False)
            else:
                consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            # A rebalance took the partition away; its new owner redelivers, dedupe absorbs it.
            log.info("%s: commit skipped: %s", self.service.name, exc)


@functools.cache  # one per event type
def _type_header(event_type: str) -> str:
    """An outbox row's headers (JSON) for an event of this type: its `ce_type`."""
    return json.dumps([(CE_TYPE, event_type)])


@functools.lru_cache(maxsize=64)  # the event types' (a dead letter's are its own)
def _headers(text: str) -> list[tuple[str, str | bytes | None]] | None:
    """An outbox row's headers as the producer takes them, read once per event type (JSON
    written and read per record was 2.5 µs of the few the header saves its consumers)."""
    return [(name, value) for name, value in json.loads(text)] or None


def _topic(msg: Message) -> str:
    """A consumed record's topic (confluent-kafka's type allows None, for error events)."""
    return msg.topic() or ""


def said_type(msg: Message) -> str | None:
    """The event type a record's `ce_type` header says; None for a record without (older
    records, other producers), which must be decoded to be told apart."""
    headers = msg.headers()  # a consumed record's: a list of (name, bytes), or None
    if isinstance(headers, list):
        for name, value in headers:
            if name == CE_TYPE and isinstance(value, bytes):
                return value.decode()
    return None


def next_batch(consumer: Consumer, size: int) -> list[Message]:
    """What is there now, up to `size` records, waiting at most 0.1 s for the first one.

    (`consume(size, timeout)` alone waits for `size` records or the whole timeout: a 100 ms
    delay per hop when traffic is light.)
    """
    first = consumer.poll(0.1)
    if first is None:
        return []
    return [first, *consumer.consume(size - 1, timeout=0)]


def run_service(service: Service, bootstrap: str, db_path: str | Path, *,
                max_attempts: int = 3, session_timeout_ms: int = 10_000) -> int:
    """Run until SIGTERM/SIGINT, then finish the batch in hand and leave the group."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runner = ServiceRunner(service, bootstrap, db_path, max_attempts=max_attempts,
                           session_timeout_ms=session_timeout_ms)

    def request_stop(_sig: int, _frame: FrameType | None) -> None:
        runner.stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    freeze_start_up()
    runner.run()
    return 0


def read_only(path: str | Path) -> closing[sqlite3.Connection] | None:
    """A read-only view of a service's database, or None when it does not exist yet."""
    if not Path(path).exists():
        return None
    return closing(connect(path, readonly=True))
