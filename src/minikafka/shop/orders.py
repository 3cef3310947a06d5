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

    def handle(self, tx: Tx, event: Event) -> None:
        match event:
            case OrderCreated():
                self._create(tx, event)
            case StockReserved():
                self._fulfil(tx, event)
            case StockRejected():
                self._advance(tx, event.order_id, event.occurred_at.isoformat(), "created",
                              "rejected", event.reason)
            # StockReleased needs nothing from this service.

    def _create(self, tx: Tx, event: OrderCreated) -> None:
        at = event.occurred_at.isoformat()
        inserted = tx.db.execute(
            "INSERT OR IGNORE INTO orders (order_id, user_id, items, total_price, status, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 'created', ?, ?)",
            (event.order_id, event.user_id, json.dumps([i.model_dump() for i in event.items]),
             event.total_price, at, at)).rowcount
        if inserted:  # a second OrderCreated for a known order id changes nothing
            row = _order(tx.db, event.order_id)
            assert row is not None
            self._record(tx, at, row, "created", None)

    def _fulfil(self, tx: Tx, event: StockReserved) -> None:
        """Confirm, then take the order on to its end."""
        at = event.occurred_at.isoformat()
        row = self._advance(tx, event.order_id, at, "created", "confirmed")
        if row is not None:  # else moved on already: this reservation was applied before
            self._take_on(tx, row, "confirmed", at)

    def _take_on(self, tx: Tx, row: sqlite3.Row, status: str, at: str) -> None:
        """The order `row` from `status` (confirmed, paid or shipped) to its end: the simulated
        payment (cards have a limit), shipping, completion."""
        if status == "confirmed" and row["total_price"] > self.payment_limit:
            self._advance(tx, row["order_id"], at, "confirmed", "rejected",
                          f"payment declined: {row['total_price']:.2f} is over the card limit "
                          f"of {self.payment_limit:.2f}")
            return
        for expected, following in _AFTER_PAYMENT[_UNDER_WAY.index(status):]:
            self._advance(tx, row["order_id"], at, expected, following)

    def _advance(self, tx: Tx, order_id: str, at: str, expected: str, status: Status,
                 reason: str | None = None) -> sqlite3.Row | None:
        """Move the order from `expected` to `status` (at time `at`) and return its row; None
        (and no change) for an order elsewhere, which moved on already."""
        row = _order(tx.db, order_id)
        if row is None:
            raise Reject(f"unknown order {order_id!r}")
        if row["status"] != expected:
            return None
        tx.db.execute("UPDATE orders SET status = ?, reason = ?, updated_at = ? "
                      "WHERE order_id = ?", (status, reason, at, order_id))
        self._record(tx, at, row, status, reason)
        return row

    def _record(self, tx: Tx, at: str, order: sqlite3.Row, status: Status,
                reason: str | None) -> None:
        """History row and OrderStatusChanged for the status `order` just took."""
        order_id = order["order_id"]
        tx.db.execute("INSERT INTO order_history (order_id, status, reason, at) "
                      "VALUES (?, ?, ?, ?)", (order_id, status, reason, at))
        tx.emit(OrderStatusChanged(order_id=order_id, user_id=order["user_id"],
                                   items=json.loads(order["items"]),
                                   total_price=order["total_price"], status=status,
                                   reason=reason))


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
