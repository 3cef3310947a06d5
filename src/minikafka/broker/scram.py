"""SCRAM's arithmetic (RFC 5802, RFC 7677) and the SASL mechanisms' names: what the broker keeps
of a password (Kafka's ScramCredential) and how it is derived. Standard library only (hashlib's
PBKDF2 and hmac), so the settings and the CLI load it without the log.

A credential is a random salt, an iteration count and two keys derived from the salted
password: StoredKey = H(HMAC(SaltedPassword, "Client Key")) and ServerKey =
HMAC(SaltedPassword, "Server Key"). Neither the password nor the salted password is kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from ..errors import ErrorCode, KafkaError

DEFAULT_ITERATIONS = 4096  # Kafka's default, and its minimum
MAX_ITERATIONS = 16384  # Kafka's maximum
SALT_BYTES = 32


@dataclass(frozen=True, slots=True)
class ScramMechanism:
    name: str
    hash: str  # hashlib's name
    type: int  # the protocol's ScramMechanism byte (DescribeUserScramCredentials)

    def hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self.hash).digest()

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.hash, data).digest()

    def salted_password(self, password: str, salt: bytes, iterations: int) -> bytes:
        """RFC 5802's Hi(): PBKDF2 with this mechanism's HMAC."""
        return hashlib.pbkdf2_hmac(self.hash, password.encode(), salt, iterations)

    def credential(self, salted_password: bytes, salt: bytes, iterations: int
                   ) -> ScramCredential:
        client_key = self.hmac(salted_password, b"Client Key")
        return ScramCredential(salt, self.digest(client_key),
                               self.hmac(salted_password, b"Server Key"), iterations)


SCRAM_SHA_256 = ScramMechanism("SCRAM-SHA-256", "sha256", 1)
SCRAM_SHA_512 = ScramMechanism("SCRAM-SHA-512", "sha512", 2)
MECHANISMS = {m.name: m for m in (SCRAM_SHA_256, SCRAM_SHA_512)}
BY_TYPE = {m.type: m for m in MECHANISMS.values()}
# SASL mechanisms, all checked against these credentials (sasl.py).
SUPPORTED_MECHANISMS = ("PLAIN", *MECHANISMS)
DEFAULT_MECHANISMS = ",".join(SUPPORTED_MECHANISMS)


def check_mechanisms(text: str) -> tuple[str, ...]:
    """`sasl.enabled.mechanisms` as a tuple; ValueError for one we do not have."""
    names = tuple(name.strip().upper() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SUPPORTED_MECHANISMS]
    if unknown or not names:
        raise ValueError(f"sasl_enabled_mechanisms: {', '.join(unknown) or 'none given'}; "
                         f"supported: {', '.join(SUPPORTED_MECHANISMS)}")
    return names


@dataclass(frozen=True, slots=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def to_json(self) -> dict[str, object]:
        return {"salt": _b64(self.salt), "stored_key": _b64(self.stored_key),
                "server_key": _b64(self.server_key), "iterations": self.iterations}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ScramCredential:
        iterations = data["iterations"]
        if not isinstance(iterations, int):
            raise ValueError(f"iterations is not a number: {iterations!r}")
        return cls(_unb64(data["salt"]), _unb64(data["stored_key"]), _unb64(data["server_key"]),
                   iterations)


def new_credential(mechanism: ScramMechanism, password: str,
                   iterations: int = DEFAULT_ITERATIONS) -> ScramCredential:
    """A credential with a fresh random salt (the CLI's, on a data directory)."""
    salt = os.urandom(SALT_BYTES)
    return mechanism.credential(mechanism.salted_password(password, salt, iterations), salt,
                                iterations)


def check_iterations(mechanism: ScramMechanism, iterations: int) -> None:
    if not DEFAULT_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise KafkaError(f"{mechanism.name} iterations must be {DEFAULT_ITERATIONS} to "
                         f"{MAX_ITERATIONS}, got {iterations}", ErrorCode.UNACCEPTABLE_CREDENTIAL)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"not base64 text: {value!r}")
    return base64.b64decode(value, validate=True)
