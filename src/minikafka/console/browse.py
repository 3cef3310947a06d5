"""The message browser's reading, the same over this broker's log and over the wire: pages of
records of one partition or all (merged by timestamp), oldest or newest first, filtered, bounded
in what they read and return; and the JSON-lines export."""

from __future__ import annotations

import base64
import collections
import heapq
import itertools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ErrorCode, KafkaError
from ..records import Record

READ_BYTES = 256 * 1024  # per read while paging
MAX_SCAN_BYTES = 8 * 1024 * 1024  # a page's reading stops here and says where to go on
MAX_PAGE = 500  # records in a page
SHOWN_BYTES = 16 * 1024  # of a key or value in a page (the export gives them whole)
EXPORT_PAGE = 200
MAX_EXPORT_RECORDS = 100_000
MAX_EXPORT_BYTES = 256 * 1024 * 1024  # of log read by one export
Json = dict[str, Any]
Decoder = Callable[[bytes | None], Json | None]  # a value decoded with a registered schema, or None


@dataclass(frozen=True, slots=True)
class Filters:
    """What a record must contain (case-insensitive; empty: anything): `text` in its key or
    value, `key` in its key, `value` in its value, `header` in one of its "name: value"."""

    text: str = ""
    key: str = ""
    value: str = ""
    header: str = ""

    def match(self, record: Record) -> bool:
        if not (self.text or self.key or self.value or self.header):
            return True  # no filter: nothing to decode
        key, value = _text(record.key) or "", _text(record.value) or ""
        return (_has(self.text, key) or _has(self.text, value)) and _has(self.key, key) \
            and _has(self.value, value) and (not self.header or any(
                _has(self.header, f"{name}: {_text(data)}") for name, data in record.headers))


def _has(needle: str, text: str) -> bool:
    return needle.lower() in text.lower()


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="backslashreplace")


def _shown(data: bytes | None, cap: int | None) -> Json:
    """A key or value as text and base64 (for the hex and base64 views), cut at `cap` bytes."""
    if data is None:
        return {"text": None, "b64": None, "size": 0, "truncated": False}
    cut = data if cap is None else data[:cap]
    return {"text": _text(cut), "b64": base64.b64encode(cut).decode(), "size": len(data),
            "truncated": len(cut) < len(data)}


def _record_json(partition: int, record: Record, cap: int | None = SHOWN_BYTES,
                 decode: Decoder | None = None, export: bool = False) -> Json:
    """One record as the browser shows it (keys and values cut at `cap`; with `decode`, its
    `schema`: the value decoded with a registered schema, or None), or with `export` as the
    export writes it: whole, without the base64 views it does not need."""
    if export:
        return {"partition": partition, "offset": record.offset, "timestamp": record.timestamp,
                "key": _text(record.key), "value": _text(record.value),
                "size": 0 if record.value is None else len(record.value),
                "headers": [[name, _text(data)] for name, data in record.headers]}
    key, value = _shown(record.key, cap), _shown(record.value, cap)
    shown = {"partition": partition, "offset": record.offset, "timestamp": record.timestamp,
             "key": key["text"], "value": value["text"], "key_b64": key["b64"],
             "value_b64": value["b64"], "size": value["size"],
             "truncated": key["truncated"] or value["truncated"],
             "headers": [[name, _text(data)] for name, data in record.headers]}
    if decode is not None:
        shown["schema"] = decode(record.value)
    return shown


class PartitionReader(Protocol):
    """One partition as the browser reads it: in this broker's log, or over the wire."""

    partition: int
    log_start_offset: int
    high_watermark: int

    async def offset_for_timestamp(self, timestamp: int) -> int | None:
        """The first offset whose timestamp is >= `timestamp` (None: none is)."""
        ...

    async def read(self, position: int, max_bytes: int) -> tuple[list[Record], int, int]:
        """(data records from `position` on, bytes read, where the next read starts): about
        `max_bytes`; no records and no progress at the end."""
        ...


class _Budget:
    """Bytes a request may still read from the log; `exhausted` once it ran out."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.exhausted = False


async def _forward(reader: PartitionReader, position: int, upper: int, want: int,
                   filters: Filters, budget: _Budget) -> tuple[list[Record], int]:
    """Up to `want` matching data records in [position, upper), oldest first, and where the next
    look starts."""
    found: list[Record] = []
    while position < upper and len(found) < want:
        if budget.left <= 0:
            budget.exhausted = True
            break
        records, size, after = await reader.read(position, READ_BYTES)
        budget.left -= size
        for record in records:
            if record.offset >= upper:
                break
            if filters.match(record):
                found.append(record)
                if len(found) == want:
                    return found, record.offset + 1
        if after <= position:
            break
        position = min(after, upper)
    return found, position


async def _backward(reader: PartitionReader, upper: int, want: int, filters: Filters,
                    budget: _Budget) -> tuple[list[Record], int]:
    """Up to `want` matching data records before `upper`, newest first, and the (exclusive)
    upper bound of the next look. Reads windows of offsets backwards, each twice as wide as the
    last while they find too little, but never wider than the budget left can read."""
    first = reader.log_start_offset
    found: list[Record] = []
    step, per_record = max(want, 16), 1
    while upper > first and len(found) < want and not budget.exhausted:
        step = max(1, min(step, budget.left // per_record // 2))
        lower = max(first, upper - step)
        before = budget.left
        window, reached = await _forward(reader, lower, upper, upper - lower, filters, budget)
        if reached < upper:  # the budget ran out inside the window: look again next page
            break
        per_record = max(1, (before - budget.left) // (upper - lower))
        window.reverse()
        found.extend(window[:want - len(found)])
        if len(found) == want:
            return found, found[-1].offset
        upper, step = lower, step * 2
    return found, upper


async def _start(reader: PartitionReader, start: str, value: int | None, newest: bool) -> int:
    """Where a partition's first page starts: for oldest first the first offset to read, for
    newest first the (exclusive) last one (from the beginning or the end: the end)."""
    first, end = reader.log_start_offset, reader.high_watermark
    if start == "end" or (start == "beginning" and newest):
        return end
    if start == "timestamp":
        found = await reader.offset_for_timestamp((value or 0) + newest)  # newest: at or before
        return end if found is None else found
    if start == "offset":
        return min(max((value or 0) + newest, first), end)
    return first  # "beginning"


def parse_cursor(text: str) -> dict[int, int]:
    """"PARTITION:OFFSET,..." (a page's `cursor`) as a dict."""
    try:
        return {int(p): int(o) for p, o in (part.split(":") for part in text.split(",") if part)}
    except ValueError:
        raise KafkaError(f"bad cursor {text!r}", ErrorCode.INVALID_REQUEST) from None


async def browse(topic: str, readers: Sequence[PartitionReader], *, start: str = "beginning",
                 value: int | None = None, limit: int = 50, newest: bool = False,
                 filters: Filters = Filters(), cursor: dict[int, int] | None = None,
                 cap: int | None = SHOWN_BYTES, decode: Decoder | None = None,
                 export: bool = False) -> Json:
    """A page of up to `limit` matching records of the partitions `readers` read, merged by
    timestamp, oldest or newest first, from a start point (beginning, end, an offset or a
    timestamp) or from a previous page's `cursor`. One page reads at most MAX_SCAN_BYTES
    (`stopped` says when it ran out); `done` says no partition has more."""
    if start == "end" and not newest and not cursor:  # the last records, oldest first
        page = await browse(topic, readers, start="end", limit=limit, newest=True,
                            filters=filters, cap=cap, decode=decode, export=export)
        page["records"].reverse()
        page["cursor"] = ",".join(f"{p['partition']}:{p['end_offset']}"
                                  for p in page["partitions"])
        return {**page, "done": True}
    budget = _Budget(MAX_SCAN_BYTES)
    found: dict[int, list[Record]] = {}
    reached: dict[int, int] = {}
    for reader in readers:
        p = reader.partition
        at = (cursor or {}).get(p)
        at = await _start(reader, start, value, newest) if at is None else at
        if newest:
            found[p], reached[p] = await _backward(reader, at, limit, filters, budget)
        else:
            found[p], reached[p] = await _forward(reader, at, reader.high_watermark, limit,
                                                  filters, budget)
    merged = list(itertools.islice(heapq.merge(
        *([(r.timestamp or 0, p, r) for r in records] for p, records in found.items()),
        key=lambda item: item[0], reverse=newest), limit))
    taken = collections.Counter(p for _, p, _ in merged)
    for p, records in found.items():
        if taken[p] < len(records):  # the next page starts at its first record not shown
            reached[p] = records[taken[p]].offset + newest
    ends = {r.partition: r.log_start_offset if newest else r.high_watermark for r in readers}
    return {"topic": topic,
            "partitions": [{"partition": r.partition, "start_offset": r.log_start_offset,
                            "end_offset": r.high_watermark} for r in readers],
            "records": [_record_json(p, r, cap, decode, export) for _, p, r in merged],
            "cursor": ",".join(f"{p}:{o}" for p, o in sorted(reached.items())),
            "done": all(reached[p] == end for p, end in ends.items()),
            "scanned_bytes": MAX_SCAN_BYTES - budget.left,
            "stopped": "scan limit" if budget.exhausted else None}


async def export(topic: str, readers: Sequence[PartitionReader], *, start: str,
                 value: int | None, newest: bool, filters: Filters) -> AsyncIterator[str]:
    """The matching records as JSON lines, whole, page after page: at most MAX_EXPORT_RECORDS
    and MAX_EXPORT_BYTES of log read; a last line says when a bound stopped it."""
    cursor, sent, scanned = None, 0, 0
    while True:
        page = await browse(topic, readers, start=start, value=value, newest=newest,
                            filters=filters, cursor=cursor, export=True,
                            limit=min(EXPORT_PAGE, MAX_EXPORT_RECORDS - sent))
        for record in page["records"]:
            yield json.dumps({"topic": topic, **record}) + "\n"
        sent += len(page["records"])
        scanned += page["scanned_bytes"]
        cursor = parse_cursor(page["cursor"])
        if page["done"]:
            return
        if sent >= MAX_EXPORT_RECORDS or scanned >= MAX_EXPORT_BYTES:
            yield json.dumps({"stopped": f"export bound reached after {sent} records, "
                                         f"{scanned} bytes read", "cursor": page["cursor"]}) + "\n"
            return
