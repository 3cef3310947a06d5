"""Fetch sessions by Kafka's FetchSession rules (FetchManager.newContext). We keep no sessions:
epoch 0 (a new full session; Kafka's answer when its cache is full: session id 0) and epoch -1
(FINAL_EPOCH, sessionless) are full fetches, served whatever session id they name (Kafka closes
that session); any other epoch is incremental, and its session is not found."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.protocol.consumer import FetchRequest

from minikafka.errors import ErrorCode

from .conftest import InProcessBroker, RawClient, create_topic
from .test_semantics import produce

NOT_FOUND = ErrorCode.FETCH_SESSION_ID_NOT_FOUND


@pytest.mark.parametrize("session_id, epoch, error", [
    (0, 0, 0), (0, -1, 0), (-1, -1, 0), (123, -1, 0), (123, 0, 0),
    (123, 5, NOT_FOUND), (0, 5, NOT_FOUND), (0, -2, NOT_FOUND), (-1, 1, NOT_FOUND),
])
def test_session_ids_and_epochs(raw: RawClient, broker: InProcessBroker, topic: str,
                                session_id: int, epoch: int, error: int) -> None:
    produce(raw, create_topic(broker.bootstrap, topic), b"one")
    cls = FetchRequest[12]
    response: Any = raw.request(cls(
        replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
        session_id=session_id, session_epoch=epoch, topics=[cls.FetchTopic(
            topic=topic, partitions=[cls.FetchTopic.FetchPartition(
                partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                log_start_offset=-1, partition_max_bytes=1 << 20)])],
        forgotten_topics_data=[], rack_id=""))
    assert (response.error_code, response.session_id) == (error, 0)
    if error:
        assert response.responses == []
    else:
        part = response.responses[0].partitions[0]
        assert part.error_code == 0 and part.high_watermark == 1 and part.records
