"""Kafka's LogValidator for batches from clients: each header field is checked against the records
before a byte is written, so no consumer ever meets a batch it cannot read.

`Partition.append` checks the framing, magic and CRC (`records.validate_batch`), then calls
`validate_records`. Errors are Kafka's: INVALID_RECORD for a batch that breaks a rule or whose
records do not match its header, UNSUPPORTED_COMPRESSION_TYPE for a codec outside 0-4,
CORRUPT_MESSAGE for a payload that does not decompress, and INVALID_TXN_STATE for a
transactional batch (we have no transactions yet, so none is ongoing).
"""

from __future__ import annotations

from ..compression import Compression, decompress
from ..errors import InvalidRecordError, InvalidTxnStateError, UnsupportedCompressionTypeError
from ..records import (
    COMPRESSION_MASK,
    CONTROL_BIT,
    HEADER_SIZE,
    TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
    BatchHeader,
    set_max_timestamp,
)
from .record_walk import walk_records

NO_TIMESTAMP = -1
_LAST_CODEC = int(Compression.ZSTD)


def validate_records(batch: bytearray, header: BatchHeader, *, keys_required: bool = False
                     ) -> BatchHeader:
    """Check a client's batch (one, framing and CRC already checked) against Kafka's rules and
    its records; return its header. A CreateTime batch whose maxTimestamp is not its records'
    gets theirs, in `batch` and in the header returned, as Kafka does."""
    (base_offset, _length, _epoch, _magic, _crc, attributes, last_offset_delta, base_timestamp,
     max_timestamp, producer_id, _producer_epoch, base_sequence, count) = header
    if base_offset != 0:
        raise InvalidRecordError(f"a produced batch has base offset 0, not {base_offset}")
    if count <= 0 or last_offset_delta != count - 1:
        raise InvalidRecordError(f"record batch claims {count} records and offset delta "
                                 f"{last_offset_delta}")
    if attributes & CONTROL_BIT:
        raise InvalidRecordError("clients may not write control batches")
    if attributes & TRANSACTIONAL_BIT:
        raise InvalidTxnStateError("transactional batch outside an ongoing transaction "
                                   "(this broker has no transactions)")
    if producer_id >= 0 and base_sequence < 0:
        raise InvalidRecordError(f"batch of producer {producer_id} has sequence {base_sequence}")
    codec = attributes & COMPRESSION_MASK
    if codec > _LAST_CODEC:
        raise UnsupportedCompressionTypeError(f"unknown compression codec {codec}")
    payload = bytes(memoryview(batch)[HEADER_SIZE:])
    if codec:
        payload = decompress(codec, payload)
    max_delta = walk_records(payload, count, keys_required)
    if attributes & TIMESTAMP_TYPE_BIT:
        return header
    records_max = base_timestamp + max_delta
    if records_max < NO_TIMESTAMP:
        records_max = NO_TIMESTAMP
    if max_timestamp == records_max:
        return header
    set_max_timestamp(batch, records_max)
    return header._replace(max_timestamp=records_max)
