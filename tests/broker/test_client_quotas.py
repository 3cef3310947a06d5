"""Client quotas over the wire (KIP-13, KIP-124, KIP-546): AlterClientQuotas and
DescribeClientQuotas through kafka-python's admin client, and real producers held to their rate."""

from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import Consumer, Producer
from kafka import KafkaAdminClient
from kafka.protocol.admin.client_quotas import (
    AlterClientQuotasRequest,
    DescribeClientQuotasRequest,
)
from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest

from minikafka.errors import ErrorCode
from minikafka.records import Record, encode_batch

from .conftest import InProcessBroker, RawClient, create_topic
from .test_bad_input import produce_request
from .test_confluent import produce

Entity = AlterClientQuotasRequest.EntryData.EntityData
Op = AlterClientQuotasRequest.EntryData.OpData
Component = DescribeClientQuotasRequest.ComponentData
EXACT, DEFAULT, ANY = 0, 1, 2


def admin_send(bootstrap: str, request: Any) -> Any:
    """kafka-python's KafkaAdminClient has no client-quota methods: its connection carries
    the request."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return admin._manager.run(admin._manager.send, request)
    finally:
        admin.close()


def alter(bootstrap: str, name: str | None, ops: dict[str, float | None],
          validate_only: bool = False) -> list[tuple[int, str | None]]:
    """Set (or with None remove) quotas of one client-id entity; each entry's (error, message)."""
    response = admin_send(bootstrap, AlterClientQuotasRequest(entries=[
        AlterClientQuotasRequest.EntryData(
            entity=[Entity(entity_type="client-id", entity_name=name)],
            ops=[Op(key=k, value=v or 0.0, remove=v is None) for k, v in ops.items()])],
        validate_only=validate_only))
    return [(e.error_code, e.error_message) for e in response.entries]


def describe(bootstrap: str, *components: Any, strict: bool = False
             ) -> dict[str | None, dict[str, float]]:
    response = admin_send(bootstrap, DescribeClientQuotasRequest(
        components=list(components), strict=strict))
    assert response.error_code == 0, response
    return {entry.entity[0].entity_name: {v.key: v.value for v in entry.values}
            for entry in response.entries}


def test_alter_describe_round_trip(own_broker: InProcessBroker) -> None:
    own_broker.start()
    bootstrap = own_broker.bootstrap
    assert describe(bootstrap) == {}
    assert alter(bootstrap, "app", {"producer_byte_rate": 1024}, validate_only=True) == [(0, None)]
    assert describe(bootstrap) == {}
    assert alter(bootstrap, "app", {"producer_byte_rate": 1024,
                                    "request_percentage": 50}) == [(0, None)]
    assert alter(bootstrap, None, {"consumer_byte_rate": 4096}) == [(0, None)]
    assert describe(bootstrap) == {"app": {"producer_byte_rate": 1024, "request_percentage": 50},
                                   None: {"consumer_byte_rate": 4096}}
    assert describe(bootstrap, Component(entity_type="client-id", match_type=EXACT,
                                         match="app")) == {
        "app": {"producer_byte_rate": 1024, "request_percentage": 50}}
    assert describe(bootstrap, Component(entity_type="client-id", match_type=DEFAULT,
                                         match=None)) == {None: {"consumer_byte_rate": 4096}}
    assert describe(bootstrap, Component(entity_type="user", match_type=ANY, match=None)) == {}

    # Refused as Kafka refuses: an unknown key, user entities; nothing changes.
    [(error, message)] = alter(bootstrap, "app", {"producer_byte_rat": 1})
    assert error == ErrorCode.INVALID_REQUEST and "producer_byte_rat" in (message or "")
    user = admin_send(bootstrap, AlterClientQuotasRequest(validate_only=False, entries=[
        AlterClientQuotasRequest.EntryData(entity=[Entity(entity_type="user", entity_name="u")],
                                           ops=[Op(key="producer_byte_rate", value=1.0)])]))
    assert user.entries[0].error_code == ErrorCode.INVALID_REQUEST
    unknown = admin_send(bootstrap, DescribeClientQuotasRequest(strict=False, components=[
        Component(entity_type="planet", match_type=ANY, match=None)]))
    assert unknown.error_code == ErrorCode.INVALID_REQUEST
    assert describe(bootstrap)["app"]["producer_byte_rate"] == 1024

    # Removal (a null value): the entity goes with its last value.
    assert alter(bootstrap, "app", {"producer_byte_rate": None,
                                    "request_percentage": None}) == [(0, None)]
    assert describe(bootstrap) == {None: {"consumer_byte_rate": 4096}}

    # Kept across a restart.
    assert own_broker.stop() == 0
    own_broker.start()
    assert describe(own_broker.bootstrap) == {None: {"consumer_byte_rate": 4096}}


def _produce_for(bootstrap: str, topic: str, client_id: str, seconds: float,
                 result: dict[str, Any]) -> None:
    """Produce 1 KB records as fast as the broker lets `client_id`; note when each was acked and
    the throttle times the broker reported."""
    acked: list[float] = []
    throttled: list[int] = []
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": client_id,
                         "linger.ms": 5, "batch.size": 16384, "acks": 1,
                         "queue.buffering.max.messages": 1000,
                         "throttle_cb": lambda event: throttled.append(event.throttle_time)})

    def delivered(err: object, msg: object) -> None:
        if err is None:
            acked.append(time.monotonic())

    value = b"x" * 1000
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            producer.produce(topic, value, on_delivery=delivered)
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    producer.purge()  # what is still queued is not measured
    producer.flush(5)
    result.update(started=started, acked=acked, throttled=throttled)


def test_throttled_producer_is_held_to_its_rate(own_broker: InProcessBroker, topic: str
                                                ) -> None:
    """Of two producers, the one with a producer_byte_rate quota is held to it; the other is
    not slowed. Rates are measured from the second second on, once the quota's 2-sample window
    (1 s floor) no longer lets a start-up burst through."""
    own_broker.extra += ("--quota-window-num", "2")
    own_broker.start()
    bootstrap = own_broker.bootstrap
    create_topic(bootstrap, topic)
    quota = 100_000
    assert alter(bootstrap, "slow", {"producer_byte_rate": quota}) == [(0, None)]
    results: dict[str, dict[str, Any]] = {"slow": {}, "fast": {}}
    threads = [threading.Thread(target=_produce_for, args=(bootstrap, topic, name, 4.0, r))
               for name, r in results.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    def rate(r: dict[str, Any]) -> float:
        """Bytes acked per second from 1 s to 4 s after the producer started."""
        start, end = r["started"] + 1.0, r["started"] + 4.0
        return sum(1000 for t in r["acked"] if start <= t < end) / 3.0

    slow, fast = rate(results["slow"]), rate(results["fast"])
    assert 0.5 * quota <= slow <= 1.3 * quota, (slow, results["slow"]["throttled"][:10])
    assert any(results["slow"]["throttled"])
    assert fast >= 10 * quota, fast
    assert not any(results["fast"]["throttled"])


def test_throttled_consumer_is_held_to_its_rate(own_broker: InProcessBroker, topic: str
                                                ) -> None:
    """A consumer_byte_rate quota holds a consumer with a backlog to its rate; another reads
    the same backlog unthrottled."""
    own_broker.extra += ("--quota-window-num", "2")
    own_broker.start()
    bootstrap = own_broker.bootstrap
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, [b"x" * 1000] * 2000, **{"batch.size": 16384})
    quota = 100_000
    assert alter(bootstrap, "slow-reader", {"consumer_byte_rate": quota}) == [(0, None)]

    def read_for(client_id: str, seconds: float) -> tuple[float, int, list[int]]:
        """(bytes per second read from 1 s to `seconds` after the first record, records read,
        throttle times reported); stops early once all 2,000 are read."""
        throttled: list[int] = []
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": client_id,
                             "client.id": client_id, "auto.offset.reset": "earliest",
                             "fetch.max.bytes": 16384, "max.partition.fetch.bytes": 16384,
                             "message.max.bytes": 16384,
                             "throttle_cb": lambda event: throttled.append(event.throttle_time)})
        consumer.subscribe([topic])
        read, count, first = 0, 0, None
        try:
            while count < 2000 and (first is None or time.monotonic() - first < seconds):
                message = consumer.poll(0.1)
                if message is None or message.error():
                    continue
                now = time.monotonic()
                first = first or now
                count += 1
                if now - first >= 1.0:
                    read += len(message.value() or b"")
        finally:
            consumer.close()
        return read / (seconds - 1.0), count, throttled

    slow, _, slow_throttled = read_for("slow-reader", 4.0)
    assert 0.4 * quota <= slow <= 1.3 * quota, (slow, slow_throttled[:10])
    assert any(slow_throttled)
    _, count, fast_throttled = read_for("fast-reader", 5.0)  # 20 s at the slow one's rate
    assert count == 2000 and not any(fast_throttled)


def test_throttled_answers_as_kip_219(own_broker: InProcessBroker, topic: str) -> None:
    """Produce v6+ (KIP-219): the answer leaves at once with throttle_time_ms, then the
    connection reads nothing for that long. Older versions: the answer itself waits, as clients
    of those versions do not back off by themselves."""
    own_broker.extra += ("--quota-window-num", "2")  # throttle times capped at 2 s
    own_broker.start()
    bootstrap = own_broker.bootstrap
    create_topic(bootstrap, topic)
    assert alter(bootstrap, "raw", {"producer_byte_rate": 1}) == [(0, None)]  # RawClient's id
    batch = encode_batch([Record(value=b"x" * 100)])
    client = RawClient(bootstrap)
    try:
        started = time.monotonic()
        answer = client.request(produce_request(topic, batch, version=7))
        assert answer.throttle_time_ms == 2000  # type: ignore[attr-defined]
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        client.request(ApiVersionsRequest[0](), correlation_id=2)
        assert time.monotonic() - started > 1.5  # muted
    finally:
        client.close()
    client = RawClient(bootstrap)
    try:
        started = time.monotonic()
        answer = client.request(produce_request(topic, batch, version=5))
        assert answer.throttle_time_ms == 2000  # type: ignore[attr-defined]
        assert time.monotonic() - started > 1.5  # held
    finally:
        client.close()


def test_request_percentage_throttles_any_request(own_broker: InProcessBroker) -> None:
    """Handler time counts against request_percentage: a client allowed a sliver of a thread
    gets throttle_time_ms in its Metadata answer, and waits before the next is read."""
    own_broker.extra += ("--quota-window-num", "2")
    own_broker.start()
    assert alter(own_broker.bootstrap, "raw", {"request_percentage": 0.0001}) == [(0, None)]
    client = RawClient(own_broker.bootstrap)
    try:
        answer: Any = client.request(MetadataRequest[8](
            topics=None, allow_auto_topic_creation=False,
            include_cluster_authorized_operations=False,
            include_topic_authorized_operations=False))
        assert answer.throttle_time_ms > 0
        started = time.monotonic()
        client.request(ApiVersionsRequest[0](), correlation_id=2)
        assert time.monotonic() - started > answer.throttle_time_ms / 1000 * 0.8
    finally:
        client.close()
