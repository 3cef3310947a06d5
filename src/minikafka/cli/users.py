"""`minikafka users add|list|delete`: SCRAM users (SASL PLAIN and SCRAM-SHA-256/512 logins), as
kafka-configs.sh manages them (`--entity-type users --alter --add-config 'SCRAM-SHA-512=[...]'`).

Over the wire (`-b`) through confluent-kafka's AdminClient, so against our broker or Apache
Kafka: AlterUserScramCredentials gets a salt and salted password computed here, never the
password. `--command-config FILE` holds the client's own settings (librdkafka's names, e.g.
`security.protocol=SASL_SSL`, `sasl.mechanism`, `sasl.username`, `sasl.password`,
`ssl.ca.location`) for a secured listener. On a data directory (`--data-dir`, with the broker
stopped) the credentials file is written directly: that is how the first user is created, as
`kafka-storage format --add-scram` does for Kafka.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from ..broker.scram import DEFAULT_ITERATIONS, MECHANISMS, check_iterations, new_credential
from ..errors import KafkaError
from .backends import admin_result
from .quotas import BOOTSTRAP_ENV

PASSWORD_ENV = "MINIKAFKA_USER_PASSWORD"


def add_target_arguments(common: argparse.ArgumentParser) -> None:
    """-b (and --command-config) for a running broker, or --data-dir for a stopped one."""
    where = common.add_mutually_exclusive_group()
    where.add_argument("-b", "--bootstrap-server", default=os.environ.get(BOOTSTRAP_ENV),
                       metavar="HOST:PORT", help=f"a running broker (env {BOOTSTRAP_ENV})")
    where.add_argument("--data-dir", help="the data directory of a stopped broker")
    common.add_argument("--command-config", metavar="FILE",
                        help="client settings for -b, KEY=VALUE lines with librdkafka's names "
                        "(security.protocol, sasl.mechanism, sasl.username, ...)")


def check_target(args: argparse.Namespace) -> None:
    if not (args.bootstrap_server or args.data_dir):
        raise ValueError(f"give -b HOST:PORT (or {BOOTSTRAP_ENV}) for a running broker, or "
                         "--data-dir for a stopped one")


def add_users_parser(sub: Any) -> None:
    """Register `users` on the CLI's subcommands (`sub` from `add_subparsers`)."""
    common = argparse.ArgumentParser(add_help=False)
    add_target_arguments(common)
    mechanisms = argparse.ArgumentParser(add_help=False)
    mechanisms.add_argument("--mechanism", action="append", choices=sorted(MECHANISMS),
                            help="SCRAM mechanism (repeatable; default: both)")
    users = sub.add_parser("users", help="add, list and delete SCRAM users (SASL logins)")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", parents=[common, mechanisms],
                             help="add a user, or set a user's password")
    add.add_argument("name")
    add.add_argument("--password", help=f"the password (default: env {PASSWORD_ENV}, else "
                     "asked for, or read from standard input)")
    add.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                     help="PBKDF2 iterations (default: %(default)s)")
    listing = actions.add_parser("list", parents=[common], help="users and their mechanisms")
    listing.add_argument("names", nargs="*", help="only these users")
    delete = actions.add_parser("delete", parents=[common, mechanisms],
                                help="remove a user's credentials")
    delete.add_argument("name")
    users.set_defaults(func=cmd_users)


def cmd_users(args: argparse.Namespace) -> int:
    check_target(args)
    names = getattr(args, "mechanism", None) or sorted(MECHANISMS)
    if args.action == "add":
        password = _password(args.password)
        for name in names:
            check_iterations(MECHANISMS[name], args.iterations)
        if args.data_dir:
            _on_disk(args.data_dir, lambda store: store.alter(
                [(args.name, MECHANISMS[n], new_credential(MECHANISMS[n], password,
                                                           args.iterations)) for n in names],
                []))
        else:
            _alter(args, [_upsertion(args.name, n, password, args.iterations) for n in names])
        print(f"Set {', '.join(names)} credentials of user '{args.name}'.")
    elif args.action == "delete":
        if args.data_dir:
            def delete(store: Any) -> None:
                if not any(store.get(args.name, MECHANISMS[n]) for n in names):
                    raise KafkaError(f"user '{args.name}' has no {' or '.join(names)} "
                                     "credentials")
                store.alter([], [(args.name, MECHANISMS[n]) for n in names])
            _on_disk(args.data_dir, delete)
        else:
            _alter(args, [_deletion(args.name, n) for n in names])
        print(f"Deleted {', '.join(names)} credentials of user '{args.name}'.")
    else:
        for user, found in _list(args):
            print(f"{user}: " + ", ".join(f"{name} (iterations={iterations})"
                                          for name, iterations in found))
    return 0


def _password(given: str | None) -> str:
    password = given or os.environ.get(PASSWORD_ENV)
    if password is None:
        password = (getpass.getpass("Password: ") if sys.stdin.isatty()
                    else sys.stdin.readline().rstrip("\n"))
    if not password:
        raise ValueError("the password must not be empty")
    return password


def _on_disk(data_dir: str, change: Any) -> None:
    """Apply `change(store)` to a stopped broker's credentials, holding its data directory."""
    from ..broker.credentials import CredentialStore

    on_disk(data_dir, CredentialStore, change, "users")


def on_disk(data_dir: str, open_store: Any, change: Any, what: str) -> None:
    """Apply `change(open_store(meta_dir))` to a stopped broker's `__meta` (its credentials,
    its ACLs), holding its data directory."""
    from ..errors import DataDirLockedError
    from ..log.manager import META, DataDirLock

    meta = Path(data_dir) / META
    meta.mkdir(parents=True, exist_ok=True)
    try:
        lock = DataDirLock(meta, exclusive=True)
    except DataDirLockedError:
        raise KafkaError(f"data directory {data_dir} is in use (a broker serves it?): change "
                         f"{what} over the wire with -b HOST:PORT") from None
    try:
        change(open_store(meta))
    finally:
        lock.release()


def _list(args: argparse.Namespace) -> list[tuple[str, list[tuple[str, int]]]]:
    if args.data_dir:
        from ..broker.credentials import CredentialStore
        from ..log.manager import META

        store = CredentialStore(Path(args.data_dir) / META)
        missing = [name for name in args.names if name not in store.users]
        if missing:
            raise KafkaError(f"no such user: {', '.join(missing)}")
        return [(user, [(name, cred.iterations) for name, cred in sorted(creds.items())])
                for user, creds in sorted(store.users.items())
                if not args.names or user in args.names]
    admin = admin_client(args)
    if args.names:
        found = {user: admin_result(future) for user, future in
                 admin.describe_user_scram_credentials(args.names).items()}
    else:
        found = admin_result(admin.describe_user_scram_credentials())
    return [(user, [(info.mechanism.name.replace("_", "-"), info.iterations)
                    for info in description.scram_credential_infos])
            for user, description in sorted(found.items())]


def admin_client(args: argparse.Namespace) -> Any:
    """An AdminClient of --bootstrap-server, with --command-config's properties (as Kafka's
    tools read a client config file)."""
    from confluent_kafka.admin import AdminClient

    config = {"bootstrap.servers": args.bootstrap_server, "client.id": "minikafka-cli",
              "log_level": 0}
    if args.command_config:
        for line in Path(args.command_config).read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                config[key.strip()] = value.strip()
    return AdminClient(config)


def _upsertion(user: str, mechanism: str, password: str, iterations: int) -> Any:
    from confluent_kafka.admin import ScramCredentialInfo, UserScramCredentialUpsertion

    info = ScramCredentialInfo(_client_mechanism(mechanism), iterations)
    return UserScramCredentialUpsertion(user, info, password.encode())


def _deletion(user: str, mechanism: str) -> Any:
    from confluent_kafka.admin import UserScramCredentialDeletion

    return UserScramCredentialDeletion(user, _client_mechanism(mechanism))


def _client_mechanism(name: str) -> Any:
    from confluent_kafka.admin import ScramMechanism

    return ScramMechanism[name.replace("-", "_")]


def _alter(args: argparse.Namespace, alterations: list[Any]) -> None:
    admin = admin_client(args)  # kept until the answers are in
    for future in admin.alter_user_scram_credentials(alterations).values():
        admin_result(future)

