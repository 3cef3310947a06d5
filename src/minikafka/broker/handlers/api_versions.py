"""ApiVersions (18): the versions we serve, so clients pick the highest both sides speak."""

from __future__ import annotations

from typing import Any

from kafka.protocol.api_key import ApiKey

from ...protocol.codec import RequestHeader, response_class
from ..context import Api, BrokerContext


async def handle_api_versions(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_class(ApiKey.ApiVersions, header.api_version)
    return cls(
        error_code=0,
        api_keys=[cls.ApiVersion(api_key=k, min_version=lo, max_version=hi)
                  for k, (lo, hi) in sorted(ctx.served_versions.items())],
        throttle_time_ms=0,
    )


def _always(_ctx: BrokerContext, _header: RequestHeader, _request: Any) -> bool:
    return True


APIS = (Api(ApiKey.ApiVersions, 0, 4, handle_api_versions, answers_now=_always),)
