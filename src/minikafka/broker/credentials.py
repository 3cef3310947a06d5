"""The SCRAM credentials of every user, kept in the data directory (KIP-554).

Credentials (scram.py) live in `__meta/scram-credentials.json`, replaced atomically and durably
on every change (log/durable.py), so `minikafka users add --data-dir` can create the first user
before the broker starts (Kafka's `kafka-storage format --add-scram`), and the broker's
AlterUserScramCredentials changes survive a crash once answered. The file holds salts and
derived keys, never a password: it alone does not let anyone log in. PLAIN logins are checked
against the same credentials: the password given is salted and hashed with the user's
SCRAM-SHA-512 (else SCRAM-SHA-256) salt and iterations and compared with the StoredKey.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from ..log.durable import read_metadata, write_atomically
from .scram import MECHANISMS, SCRAM_SHA_256, SCRAM_SHA_512, ScramCredential, ScramMechanism

CREDENTIALS_FILE = "scram-credentials.json"  # in the data directory's __meta


Users = dict[str, dict[str, ScramCredential]]  # user -> mechanism name -> credential


class CredentialStore:
    """Every user's SCRAM credentials, as kept in `__meta`; changes are written before they are
    seen (a failed write changes nothing and raises KafkaStorageError)."""

    def __init__(self, meta_dir: Path) -> None:
        self.path = meta_dir / CREDENTIALS_FILE
        self.users: Users = {}
        with suppress(FileNotFoundError):
            self.users = read_metadata(self.path, _parse)

    def get(self, user: str, mechanism: ScramMechanism) -> ScramCredential | None:
        return self.users.get(user, {}).get(mechanism.name)

    def check_plain(self, user: str, password: str) -> bool:
        """Whether `password` is `user`'s, by their strongest SCRAM credential."""
        for mechanism in (SCRAM_SHA_512, SCRAM_SHA_256):
            stored = self.get(user, mechanism)
            if stored is not None:
                salted = mechanism.salted_password(password, stored.salt, stored.iterations)
                derived = mechanism.credential(salted, stored.salt, stored.iterations)
                return hmac.compare_digest(derived.stored_key, stored.stored_key)
        return False

    def alter(self, upserts: Iterable[tuple[str, ScramMechanism, ScramCredential]],
              deletions: Iterable[tuple[str, ScramMechanism]]) -> None:
        """Set and remove credentials, all in one durable write."""
        users = {user: dict(creds) for user, creds in self.users.items()}
        for user, mechanism in deletions:
            users.get(user, {}).pop(mechanism.name, None)
        for user, mechanism, credential in upserts:
            users.setdefault(user, {})[mechanism.name] = credential
        users = {user: creds for user, creds in users.items() if creds}
        write_atomically(self.path, _dump(users))
        self.users = users


def _parse(text: str) -> Users:
    users: Users = {}
    for user, creds in json.loads(text)["users"].items():
        unknown = set(creds) - set(MECHANISMS)
        if unknown:
            raise ValueError(f"unknown SCRAM mechanism(s) {sorted(unknown)} for {user!r}")
        users[user] = {name: ScramCredential.from_json(cred) for name, cred in creds.items()}
    return users


def _dump(users: Users) -> str:
    return json.dumps({"version": 1, "users": {
        user: {name: cred.to_json() for name, cred in sorted(creds.items())}
        for user, creds in sorted(users.items())}}, indent=1)
