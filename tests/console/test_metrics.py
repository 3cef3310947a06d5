"""/metrics after known traffic from real clients, parsed as Prometheus parses it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from brokerkit import InProcessBroker
from minikafka.broker import load_config

from .conftest import Console, start_console_broker

RECORDS = 25


class Scrape:
    """One /metrics page, sample by sample."""

    def __init__(self, text: str) -> None:
        self.samples = {(s.name, frozenset(s.labels.items())): s.value
                        for family in text_string_to_metric_families(text)
                        for s in family.samples}

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def all(self, name: str, **labels: str) -> list[float]:
        """Values of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return [value for (n, have), value in self.samples.items()
                if n == name and wanted <= have]


@pytest.fixture
def flushing_console(tmp_path: Path) -> Iterator[Console]:
    console = start_console_broker(tmp_path / "data", "--flush", "always")
    yield console
    assert console.broker.stop() == 0, console.broker.log()


def test_metrics_count_known_traffic(flushing_console: Console) -> None:
    bootstrap, topic, group = flushing_console.broker.bootstrap, "metered", "metered-readers"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(10)
    with pytest.raises(Exception, match="already exists"):
        admin.create_topics([NewTopic(topic, 1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce(topic, key=str(i), value=f"record {i}".encode(), partition=0)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        assert len(consumer.consume(RECORDS, timeout=10)) == RECORDS
        consumer.commit(offsets=[TopicPartition(topic, 0, 10)], asynchronous=False)
        scrape = Scrape(flushing_console.metrics_text())
    finally:
        consumer.close()

    partition = {"topic": topic, "partition": "0"}
    assert scrape("minikafka_topic_records_in_total", topic=topic) == RECORDS
    assert scrape("minikafka_topic_records_out_total", topic=topic) == RECORDS
    # Batches are stored and served as they came: bytes in = bytes out = the log's size.
    size = scrape("minikafka_log_size_bytes", **partition)
    assert size > RECORDS * len("record 0")
    assert scrape("minikafka_topic_bytes_in_total", topic=topic) == size
    assert scrape("minikafka_topic_bytes_out_total", topic=topic) == size
    assert scrape("minikafka_log_segments", **partition) == 1
    assert scrape("minikafka_log_start_offset", **partition) == 0
    assert scrape("minikafka_log_end_offset", **partition) == RECORDS
    assert scrape("minikafka_consumer_group_committed_offset", group=group, **partition) == 10
    assert scrape("minikafka_consumer_group_lag", group=group, **partition) == RECORDS - 10

    produce_requests = scrape.all("minikafka_requests_total", api="Produce")
    assert sum(produce_requests) >= 1
    assert sum(scrape.all("minikafka_request_duration_seconds_count", api="Produce")) == sum(
        produce_requests)
    assert sum(scrape.all("minikafka_requests_total", api="Fetch")) >= 1
    assert sum(scrape.all("minikafka_requests_total", api="ApiVersions")) >= 3  # 3 clients
    assert scrape.all("minikafka_errors_total", api="CreateTopics",
                      error="TOPIC_ALREADY_EXISTS") == [1]
    assert scrape("minikafka_fsync_duration_seconds_count") >= 1  # acks=all under flush=always
    assert scrape("minikafka_connections") >= 1  # the consumer's, at least
    assert scrape("process_resident_memory_bytes") > 0


def test_console_settings_come_from_the_environment() -> None:
    config = load_config(environ={"MINIKAFKA_UI": "false", "MINIKAFKA_UI_PORT": "18080"})
    assert (config.ui, config.ui_port) == (False, 18080)


def test_a_taken_console_port_is_a_warning_and_the_broker_serves(tmp_path: Path) -> None:
    """The console is a convenience: a port someone else holds never keeps the broker from
    starting (it says so in one warning line, and carries on without the console)."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        broker = InProcessBroker(tmp_path / "data", "--ui-port", str(port)).start()
        try:
            assert broker.console_url is None
            warnings = [line for line in broker.log().splitlines()
                        if f"web console cannot listen on 127.0.0.1:{port}" in line]
            assert len(warnings) == 1 and "WARNING" in warnings[0], broker.log()
            producer = Producer({"bootstrap.servers": broker.bootstrap})
            producer.produce("served-anyway", b"x")
            assert producer.flush(10) == 0
        finally:
            assert broker.stop() == 0


def test_an_offset_reset_is_fsynced_before_it_answers(flushing_console: Console) -> None:
    """Under flush=always a console reset, like OffsetCommit, answers only after the offsets
    store's group-commit fsync (the fsync histogram counts it)."""
    flushing_console.call("POST", "api/topics", {"name": "reset.durable", "partitions": 2})

    def fsyncs() -> float:
        return Scrape(flushing_console.metrics_text())("minikafka_fsync_duration_seconds_count")

    before = fsyncs()
    answer = flushing_console.call("POST", "api/groups/reset.readers/reset-offsets",
                                   {"topic": "reset.durable", "to": "earliest"})
    assert [row["committed"] for row in answer["offsets"]] == [0, 0]
    assert fsyncs() == before + 1
