"""InitProducerId (22): ids and epochs for idempotent producers.

Every call without a transactional id gets a fresh producer id at epoch 0, as Kafka does; the
log then checks each (producer id, partition)'s sequences. Transactions are not supported, so a
transactional id is refused with an error the client reports rather than retries.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, KafkaError
from ...protocol.codec import RequestHeader, response_class
from .. import ops
from ..context import Api, BrokerContext


async def handle_init_producer_id(ctx: BrokerContext, header: RequestHeader, request: Any
                                  ) -> Any:
    cls = response_class(ApiKey.InitProducerId, header.api_version)
    if request.transactional_id is not None:
        return cls(throttle_time_ms=0, error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                   producer_id=-1, producer_epoch=-1)
    try:
        producer_id = ops.allocate_producer_id(ctx)
    except KafkaError as exc:
        return cls(throttle_time_ms=0, error_code=exc.code, producer_id=-1, producer_epoch=-1)
    return cls(throttle_time_ms=0, error_code=0, producer_id=producer_id, producer_epoch=0)


APIS = (Api(ApiKey.InitProducerId, 0, 4, handle_init_producer_id),)
