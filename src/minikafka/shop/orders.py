"""The order service: records orders and moves each through its life.

    OrderCreated ─► created ─► StockReserved ─► confirmed ─► paid ─► shipped ─► completed
                           └─► StockRejected ─► rejected         │
                                         payment declined ◄──────┘─► rejected (stock released)

Two events drive it, each applied in one transaction: OrderCreated, and inventory's answer.
The steps after a reservation (confirm, pay, ship, complete) wait for no other service, so they
are taken together, in the reservation's transaction, each still its own OrderStatusChanged on
`order-status`, in order (reading its own events back cost a hop, a consume and a produce, per
step). A crash loses nothing: the triggering event is redelivered and, if it was already
applied, the order's status shows it and nothing happens. An order the previous version (which
read those events back) left in `confirmed`, `paid` or `shipped` is taken on when it starts.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from .events import (
    INVENTORY,
    ORDERS,
    Event,
    OrderCreated,
    OrderStatusChanged,
    Status,
    StockRejected,
    StockReserved,
)
from .runtime import Reject, Tx, transaction

DEFAULT_PAYMENT_LIMIT = 2000.0
_AFTER_PAYMENT: tuple[tuple[str, Status], ...] = (
    ("confirmed", "paid"), ("paid", "shipped"), ("shipped", "completed"))
_UNDER_WAY = tuple(expected for expected, _ in _AFTER_PAYMENT)
_ACTS_ON = frozenset(cls.__name__ for cls in (OrderCreated, StockReserved, StockRejected))


class OrderService:
    """Owns `orders` and `order_history`; publishes every status change."""

    name = "orders"
    topics = (ORDERS, INVENTORY)
    schema = """
    CREATE TABLE IF NOT EXISTS orders (
        order_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        items TEXT NOT NULL,
        total_price REAL NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS order_history (
        order_id TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        at TEXT NOT NULL,
        PRIMARY KEY (order_id, status)
    );
    CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status);
    """

    def __init__(self, payment_limit: float = DEFAULT_PAYMENT_LIMIT) -> None:
        self.payment_limit = payment_limit

    def setup(self, db: sqlite3.Connection) -> None:
        """Take on, in one transaction, the orders a previous version left under way: it took
        each step after the reservation on reading its own `order-status` event back, which
        this version no longer consumes, so nothing else would move them on."""
        at = datetime.now(UTC).isoformat()
        with transaction(db):
            for row in db.execute("SELECT * FROM orders WHERE status IN (?, ?, ?)",
                                  _UNDER_WAY).fetchall():
                self._take_on(Tx(db), row, row["status"], at)

    def after_batch(self, db: sqlite3.Connection) -> None:
        """Everything this service does happens inside the event's transaction."""

    def concerns(self, event_type: str) -> bool:
        """New orders and inventory's answers (a StockReleased needs nothing from it)."""
        return event_type in _ACTS_ON

    def handle(self, tx: Tx, event: Event) -> None:
        match event:
            case OrderCreated():
                self._create(tx, event)
            case StockReserved():
                row = self._expect(tx, event.order_id, "created")
                if row is not None:  # else moved on already: this reservation was applied before
                    self._take_on(tx, row, "created", event.occurred_at.isoformat())
            case StockRejected():
                row = self._expect(tx, event.order_id, "created")
                if row is not None:
                    self._move(tx, row, event.occurred_at.isoformat(),
                               [("rejected", event.reason)])

    def _create(self, tx: Tx, event: OrderCreated) -> None:
        at = event.occurred_at.isoformat()
        inserted = tx.db.execute(
            "INSERT OR IGNORE INTO orders (order_id, user_id, items, total_price, status, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 'created', ?, ?)",
            (event.order_id, event.user_id, json.dumps([i.model_dump() for i in event.items]),
             event.total_price, at, at)).rowcount
        if inserted:  # a second OrderCreated for a known order id changes nothing
            self._record(tx, at, OrderStatusChanged(
                order_id=event.order_id, user_id=event.user_id, items=event.items,
                total_price=event.total_price, status="created"))

    def _expect(self, tx: Tx, order_id: str, status: str) -> sqlite3.Row | None:
        """The order's row if it is in `status`; None for an order that moved on already."""
        row = _order(tx.db, order_id)
        if row is None:
            raise Reject(f"unknown order {order_id!r}")
        return row if row["status"] == status else None

    def _take_on(self, tx: Tx, row: sqlite3.Row, status: str, at: str) -> None:
        """The order `row` from `status` (created, its stock reserved; confirmed, paid or
        shipped) to its end: confirmation, the simulated payment (cards have a limit),
        shipping, completion."""
        steps: list[tuple[Status, str | None]] = []
        if status == "created":
            steps.append(("confirmed", None))
            status = "confirmed"
        if status == "confirmed" and row["total_price"] > self.payment_limit:
            steps.append(("rejected", f"payment declined: {row['total_price']:.2f} is over the "
                                      f"card limit of {self.payment_limit:.2f}"))
        else:
            steps += [(following, None) for _, following in
                      _AFTER_PAYMENT[_UNDER_WAY.index(status):]]
        self._move(tx, row, at, steps)

    def _move(self, tx: Tx, row: sqlite3.Row, at: str,
              steps: list[tuple[Status, str | None]]) -> None:
        """Take the order `row` through `steps` ((status, reason), in order) at time `at`: one
        update to the last, and each step's history row and OrderStatusChanged."""
        final, reason = steps[-1]
        tx.db.execute("UPDATE orders SET status = ?, reason = ?, updated_at = ? "
                      "WHERE order_id = ?", (final, reason, at, row["order_id"]))
        (status, reason), *later = steps
        event = OrderStatusChanged(order_id=row["order_id"], user_id=row["user_id"],
                                   items=json.loads(row["items"]),
                                   total_price=row["total_price"], status=status, reason=reason)
        self._record(tx, at, event)
        for status, reason in later:
            event = event.moved_on(status, reason)
            self._record(tx, at, event)

    def _record(self, tx: Tx, at: str, event: OrderStatusChanged) -> None:
        """The history row of the status `event` announces, and the event."""
        tx.db.execute("INSERT INTO order_history (order_id, status, reason, at) "
                      "VALUES (?, ?, ?, ?)", (event.order_id, event.status, event.reason, at))
        tx.emit(event)


def _order(db: sqlite3.Connection, order_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute("SELECT * FROM orders WHERE order_id = ?",
                                         (order_id,)).fetchone()
    return row


def order_view(db: sqlite3.Connection, order_id: str) -> dict[str, Any] | None:
    """An order with its history, as the API shows it."""
    row = _order(db, order_id)
    if row is None:
        return None
    history = db.execute("SELECT status, reason, at FROM order_history WHERE order_id = ? "
                         "ORDER BY rowid", (order_id,)).fetchall()
    return {
        "order_id": row["order_id"], "user_id": row["user_id"],
        "items": json.loads(row["items"]), "total_price": row["total_price"],
        "status": row["status"], "reason": row["reason"],
        "history": [dict(h) for h in history],
    }
