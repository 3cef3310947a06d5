"""The fuzzing engine: valid request frames to start from, and a seeded mutator.

Seeds are every API and version a broker serves, built from kafka-python's request classes
(generated from Kafka's schemas) with plausible field values, plus real clients' traffic
recorded in `CORPUS` (`python tests/protocol/fuzz.py record` records it again). A frame here is
what follows the 4-byte size: the request header and body.

Mutations are deterministic per seed (`random.Random(seed)`), so a failing frame is found again
from the seed the campaign prints.
"""

from __future__ import annotations

import random
import struct
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from minikafka.protocol.codec import REQUESTS, parse_header
from minikafka.protocol.primitives import MalformedError
from minikafka.records import Record, encode_batch

CORPUS = Path(__file__).with_name("fuzz_corpus.bin")  # size-prefixed frames, < 200 KB
TOPIC = "fuzz"  # the topic seeds name (the campaign's canary has another name)

# Field values by name: small timeouts so a valid seed never holds the broker long; counts
# and indexes that exist. Anything else gets the type's zero or TOPIC.
_INTS = {"timeout_ms": 100, "max_wait_ms": 10, "num_partitions": 1, "replication_factor": 1,
         "acks": 1, "session_timeout_ms": 6000, "rebalance_timeout_ms": 100, "max_bytes": 65536,
         "partition_max_bytes": 65536, "generation_id": -1, "producer_id": -1,
         "producer_epoch": -1, "count": 2, "timestamp": -1, "max_num_offsets": 1,
         "replica_id": -1, "broker_id": -1, "node_id": -1, "isolation_level": 0,
         "leader_epoch": -1, "current_leader_epoch": -1, "last_fetched_epoch": -1,
         "log_start_offset": -1, "committed_leader_epoch": -1, "resource_type": 2,
         "config_operation": 0, "key_type": 0, "transaction_timeout_ms": 1000}
_STRINGS = {"group_id": "fuzz-group", "member_id": "", "group_instance_id": None,
            "protocol_type": "consumer", "transactional_id": None, "client_id": "fuzz",
            "rack_id": None, "resource_name": TOPIC, "key": "fuzz", "value": "1000",
            "assignor": "range", "reason": None, "client_rack": None}
_EMPTY = {"assignments"}  # CreateTopics/CreatePartitions: the broker's choice, not a manual one
_RECORDS = encode_batch([Record(b"fuzz-value", key=b"k", timestamp=1_700_000_000_000)])


def _scalar(name: str, type_str: str) -> Any:
    if type_str in ("int8", "int16", "int32", "int64", "uint16", "uint32"):
        return _INTS.get(name, 0)
    if type_str == "string":
        return _STRINGS.get(name, TOPIC)
    if type_str == "bool":
        return False
    if type_str == "float64":
        return 0.0
    if type_str == "uuid":
        return uuid.UUID(int=0)
    if type_str == "records":
        return _RECORDS
    if type_str == "bytes":
        return b""
    raise ValueError(f"no plausible value for a {type_str} ({name})")


_HOSTILE_INTS = (-1, -2, 0x7FFF, 0x7FFFFFFF, -0x80000000, 1 << 40)
_HOSTILE_STRINGS = (None, "", "x" * 300, "\x00", "a/b", "..", "__consumer_offsets")


def _values(struct_field: Any, version: int, rng: random.Random | None = None
            ) -> dict[str, Any]:
    """Plausible values of a struct's fields at `version`, one element per array (most); with `rng`,
    a few hostile ones (null, empty, negative, huge, many elements)."""
    values = {}
    for field in struct_field.fields.values():
        if not field.for_version_q(version):
            continue
        hostile = rng is not None and rng.random() < 0.15
        if field.is_struct_array():
            inner = field.array_of
            count = rng.choice((0, 2, 50)) if hostile and rng else int(field.name not in _EMPTY)
            values[field.name] = [inner.data_class(**_values(inner, version, rng))
                                  for _ in range(count)]
        elif field.is_array():
            values[field.name] = [_scalar(field.name, field.array_of.type_str)]
        elif field.is_struct():
            values[field.name] = field.data_class(**_values(field, version, rng))
        else:
            value = _scalar(field.name, field.type_str)
            nullable = field.nullable_for_version_q(version)
            values[field.name] = "" if value is None and not nullable else value
        if hostile and rng and not field.is_struct_array():
            values[field.name] = _hostile(rng, field, values[field.name])
    return values


def _hostile(rng: random.Random, field: Any, plausible: Any) -> Any:
    if field.is_array():
        return rng.choice((None, [], plausible * 50))
    if isinstance(plausible, bool):
        return not plausible
    if isinstance(plausible, int):
        return rng.choice(_HOSTILE_INTS)
    if isinstance(plausible, str) or plausible is None:
        return rng.choice(_HOSTILE_STRINGS)
    return None


def request_frame(request: Any, correlation_id: int = 1) -> bytes:
    request.with_header(correlation_id=correlation_id, client_id="fuzz")
    return bytes(request.encode(header=True, framed=False))


def served_seeds(served: dict[int, tuple[int, int]]) -> list[bytes]:
    """One valid frame per served API key and version (`served`: the ApiVersions answer)."""
    frames = []
    for key, (low, high) in sorted(served.items()):
        for version in range(low, high + 1):
            cls = REQUESTS[key][version]
            frames.append(request_frame(cls(**_values(cls._struct, version))))
    return frames


def hostile_request(rng: random.Random, served: dict[int, tuple[int, int]]) -> bytes | None:
    """A well-formed frame of a served API and version with a few hostile field values; None
    when the schema classes cannot encode what was drawn (an int out of its range...)."""
    key = rng.choice(sorted(served))
    version = rng.randint(*served[key])
    cls = REQUESTS[key][version]
    try:
        return request_frame(cls(**_values(cls._struct, version, rng)))
    except Exception:  # whatever kafka-python's encoders raise for a value out of range
        return None


def read_corpus(path: Path = CORPUS) -> list[bytes]:
    data = path.read_bytes()
    frames, pos = [], 0
    while pos < len(data):
        (size,) = struct.unpack_from(">i", data, pos)
        frames.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    return frames


# --- mutations ---------------------------------------------------------------------------------

_LENGTHS = (-1, -2, 0, 1, 0x7F, 0x7FFF, -0x8000, 0x7FFFFFFF, -0x80000000, 0x10000, 1 << 24)


def _bit_flips(rng: random.Random, frame: bytearray, lo: int, seeds: list[bytes]
               ) -> None:
    for _ in range(rng.randint(1, 8)):
        frame[rng.randrange(lo, len(frame))] ^= 1 << rng.randrange(8)


def _insert(rng: random.Random, frame: bytearray, lo: int, seeds: list[bytes]
            ) -> None:
    at = rng.randrange(lo, len(frame) + 1)
    frame[at:at] = rng.randbytes(rng.randint(1, 16))


def _delete(rng: random.Random, frame: bytearray, lo: int, seeds: list[bytes]
            ) -> None:
    at = rng.randrange(lo, len(frame))
    del frame[at:at + rng.randint(1, 16)]


def _length(rng: random.Random, frame: bytearray, lo: int, seeds: list[bytes]
            ) -> None:
    """An int16 or int32 (a string length or array count, likely) or a varint (compact ones)
    somewhere past the fixed header part made -1, 0, huge..."""
    at = rng.randrange(lo, len(frame))
    value = rng.choice(_LENGTHS)
    kind = rng.randrange(3)
    if kind == 0 and at + 2 <= len(frame):
        struct.pack_into(">h", frame, at, max(-0x8000, min(0x7FFF, value)))
    elif kind == 1 and at + 4 <= len(frame):
        struct.pack_into(">i", frame, at, value)
    else:
        frame[at] = rng.choice((0x00, 0x01, 0x7F, 0xFF))


def _truncate(rng: random.Random, frame: bytearray, lo: int, seeds: list[bytes]
              ) -> None:
    del frame[rng.randrange(lo, len(frame)):]


def _splice(rng: random.Random, frame: bytearray, lo: int, seeds: list[bytes]
            ) -> None:
    other = rng.choice(seeds)
    frame[rng.randrange(lo, len(frame)):] = other[rng.randrange(len(other)):]


def _header(rng: random.Random, frame: bytearray, lo: int, seeds: list[bytes]
            ) -> None:
    """Another API key and/or version on this body: mostly served ones, sometimes any."""
    other = rng.choice(seeds)
    if rng.random() < 0.5:
        frame[0:2] = other[0:2]
    if rng.random() < 0.5:
        frame[2:4] = other[2:4]
    else:
        struct.pack_into(">h", frame, 2, rng.choice((-1, 0, 1, 99, 0x7FFF)))


Mutation = Callable[[random.Random, bytearray, int, list[bytes]], None]
MUTATIONS: tuple[Mutation, ...] = (_bit_flips, _insert, _delete, _length, _truncate, _splice,
                                   _header)


def _body_start(frame: bytes | bytearray) -> int:
    try:
        return parse_header(frame)[1]
    except MalformedError:
        return 0


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """A seed with one to three mutations (a few frames stay valid, as traffic mostly is).
    Most land in the body, past the request header: a broken header only ever closes the
    connection, while a body holds the fields the handlers use."""
    frame = bytearray(rng.choice(seeds))
    if rng.random() < 0.05:
        return bytes(frame)
    for _ in range(rng.randint(1, 3)):
        lo = _body_start(frame) if rng.random() < 0.8 else 0
        if len(frame) <= max(lo, 9):
            break
        rng.choice(MUTATIONS)(rng, frame, lo, seeds)
    return bytes(frame)


def frames(seed: int, count: int, seeds: list[bytes], served: dict[int, tuple[int, int]]
           ) -> Iterator[bytes]:
    """`count` frames, the same ones for the same seed: mutated seeds, and well-formed
    requests of hostile values (a quarter)."""
    rng = random.Random(seed)
    for _ in range(count):
        frame = hostile_request(rng, served) if rng.random() < 0.25 else None
        yield mutate(rng, seeds) if frame is None else frame


# --- recording real clients --------------------------------------------------------------------


def record(path: Path = CORPUS) -> None:
    """Record what confluent-kafka's producer, consumer and admin client and kafka-python's send
    to a broker (every frame it receives, tapped where it parses them) into `path`."""
    import tempfile

    import minikafka.broker.connection as connection
    from brokerkit import InProcessBroker

    seen: list[bytes] = []
    parse = connection.parse_header

    def tap(frame: bytes | memoryview) -> Any:
        seen.append(bytes(frame))
        return parse(frame)

    connection.parse_header = tap  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        broker = InProcessBroker(Path(tmp) / "data", "--no-ui",
                                 "--group-initial-rebalance-delay-ms", "0").start()
        try:
            _confluent_traffic(broker.bootstrap)
            _kafka_python_traffic(broker.bootstrap)
        finally:
            broker.stop()
            connection.parse_header = parse
    unique = list(dict.fromkeys(seen))
    path.write_bytes(b"".join(struct.pack(">i", len(f)) + f for f in unique))
    print(f"{len(unique)} frames, {path.stat().st_size} bytes in {path}")


def _confluent_traffic(bootstrap: str) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("rec-a", 2, 1)])["rec-a"].result(10)
    admin.create_partitions([NewPartitions("rec-a", 3)])["rec-a"].result(10)
    admin.list_topics(timeout=10)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "compression.type": "lz4", "linger.ms": 5})
    for i in range(20):
        producer.produce("rec-a", key=str(i).encode(), value=b"v" * i,
                         headers=[("h", b"x")])
    producer.flush(10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "rec-g",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["rec-a"])
    got = 0
    for _ in range(100):
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            got += 1
            consumer.commit(message, asynchronous=False)
        if got >= 20:
            break
    consumer.close()
    admin.delete_topics(["rec-a"])["rec-a"].result(10)


def _kafka_python_traffic(bootstrap: str) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("rec-b", 1, 1)])
    admin.describe_configs([])
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip")
    for i in range(10):
        producer.send("rec-b", key=b"k", value=b"v%d" % i)
    producer.flush(10)
    producer.close()
    consumer = KafkaConsumer("rec-b", bootstrap_servers=bootstrap, group_id="rec-h",
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    for _ in consumer:
        pass
    consumer.commit()
    consumer.close()
    admin.delete_topics(["rec-b"])
    admin.close()


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))  # brokerkit
    if sys.argv[1:] == ["record"]:
        record()
    else:
        sys.exit("usage: fuzz.py record")
