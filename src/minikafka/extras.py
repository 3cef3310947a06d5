"""The optional parts of minikafka (pyproject's extras) and the modules each needs.

The core (log, clients, broker, CLI) never imports these at start; a command that needs one
checks first, so a missing part is one line naming the extra to install, not a traceback.
"""

from __future__ import annotations

import importlib.util

EXTRAS = {
    "console": ("fastapi", "uvicorn", "pydantic"),
    "shop": ("fastapi", "uvicorn", "pydantic", "httpx", "aiohttp", "httptools",
             "uvloop", "uuid_utils", "confluent_kafka"),
    "registry": ("starlette", "uvicorn", "avro", "jsonschema", "google.protobuf",
                 "proto_schema_parser", "confluent_kafka"),
}


class MissingExtra(Exception):
    """An optional part is not installed."""


def require(extra: str, command: str, hint: str = "") -> None:
    """Raise MissingExtra unless every module of `extra` can be imported."""
    missing = [name for name in EXTRAS[extra] if not _importable(name)]
    if missing:
        raise MissingExtra(f"minikafka {command} needs the {extra} extra "
                           f"({', '.join(missing)} not installed): "
                           f"pip install 'minikafka[{extra}]'{hint}")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package of a dotted name (google.protobuf)
        return False
