"""minikafka: a Kafka-compatible event log for Python.

The clients load on first use (`from minikafka import Producer`), not with the package, so
`minikafka --help` and the broker do not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Consumer, Message, Producer, Sent
    from .records import Record

__version__ = "0.1.0"
__all__ = ["Consumer", "Message", "Producer", "Record", "Sent", "__version__"]

_LAZY = {"Consumer": ".client", "Message": ".client", "Producer": ".client", "Sent": ".client",
         "Record": ".records"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
