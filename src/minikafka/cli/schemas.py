"""`minikafka schemas`: subjects and schemas of a schema registry with Confluent's REST API (ours
in `minikafka serve`, or Confluent's): list, get, register, check.

Plain HTTP through the standard library, so it needs no extra. A refusal is one line with the
registry's own message and error code; `check` exits 1 when the schema is incompatible.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ..shop.settings import DEFAULT_REGISTRY, REGISTRY_ENV, default_registry
from .backends import print_table

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
TIMEOUT = 30
TYPES_BY_SUFFIX = {".avsc": "AVRO", ".avro": "AVRO", ".json": "JSON", ".proto": "PROTOBUF"}


class RegistryCallError(ValueError):
    """The registry refused a request, or could not be reached (one line for `cli.main`)."""


def add_schemas_parser(sub: Any) -> None:
    """Register `schemas` on the CLI's subcommands (`sub` from `add_subparsers`)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", default=default_registry(),
                        metavar="URL", help=f"the schema registry (env {REGISTRY_ENV}; "
                        f"default: {DEFAULT_REGISTRY})")
    schemas = sub.add_parser("schemas", help="list, get, register, check schemas in a schema "
                             "registry")
    actions = schemas.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common],
                                 help="subjects with their latest version, id and type")
    listing.add_argument("--prefix", default="", help="only subjects starting with this")
    listing.add_argument("--deleted", action="store_true", help="soft-deleted ones too")
    get = actions.add_parser("get", parents=[common],
                             help="a schema (to stdout; what it is to stderr)")
    get.add_argument("subject", nargs="?")
    get.add_argument("--version", default="latest", help="a version number or latest")
    get.add_argument("--id", type=int, help="the schema with this id (instead of a subject)")
    for name, text in (("register", "register a schema file as the subject's next version"),
                       ("check", "is a schema file compatible with the subject (exit 1 if not)")):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("subject")
        action.add_argument("file", help="the schema (- for stdin)")
        action.add_argument("--type", choices=["AVRO", "JSON", "PROTOBUF"], type=str.upper,
                            help="the format (default: from the file's suffix .avsc, .json, "
                            ".proto; else AVRO)")
        action.add_argument("--reference", action="append", default=[],
                            metavar="NAME=SUBJECT:VERSION", help="a schema it references "
                            "(repeatable)")
    actions.choices["check"].add_argument(
        "--version", default=None, help="only against this version (default: as registering "
        "would check, by the subject's compatibility level)")
    schemas.set_defaults(func=cmd_schemas)


class RegistryClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method,
                                         headers={"Content-Type": CONTENT_TYPE,
                                                  "Accept": CONTENT_TYPE})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                found = json.loads(raw)
                message = f"{found['message']} (error {found['error_code']})"
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {exc.code}: {raw[:200].decode(errors='replace')}"
            raise RegistryCallError(message) from None
        except urllib.error.URLError as exc:
            raise RegistryCallError(f"cannot reach the schema registry at {self.url}: "
                                    f"{exc.reason}") from None


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _schema_body(args: argparse.Namespace) -> dict[str, Any]:
    """The register/check request: the file's text, its format, its references."""
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    schema_type = args.type or TYPES_BY_SUFFIX.get(Path(args.file).suffix.lower(), "AVRO")
    body: dict[str, Any] = {"schema": text, "schemaType": schema_type}
    references = []
    for spec in args.reference:
        name, _, target = spec.partition("=")
        subject, _, version = target.rpartition(":")
        if not (name and subject and version.isdigit()):
            raise RegistryCallError(f"--reference expects NAME=SUBJECT:VERSION, got {spec!r}")
        references.append({"name": name, "subject": subject, "version": int(version)})
    if references:
        body["references"] = references
    return body


def _show_schema(found: dict[str, Any], what: str) -> None:
    schema_type = found.get("schemaType", "AVRO")
    print(f"{what}, type {schema_type}", file=sys.stderr)
    text = found["schema"]
    if schema_type != "PROTOBUF":
        text = json.dumps(json.loads(text), indent=2)
    print(text)


def cmd_schemas(args: argparse.Namespace) -> int:
    registry = RegistryClient(args.registry)
    if args.action == "list":
        query = urllib.parse.urlencode({"subjectPrefix": args.prefix,
                                        "deleted": str(args.deleted).lower()})
        rows = []
        for subject in registry.call("GET", f"subjects?{query}"):
            path = f"subjects/{_quote(subject)}/versions"
            versions = registry.call("GET", f"{path}?deleted={str(args.deleted).lower()}")
            latest = registry.call("GET", f"{path}/{versions[-1]}?deleted=true")
            rows.append((subject, str(len(versions)), str(latest["version"]), str(latest["id"]),
                         latest.get("schemaType", "AVRO")))
        print_table(("SUBJECT", "VERSIONS", "LATEST", "ID", "TYPE"), rows)
    elif args.action == "get":
        if (args.id is None) == (args.subject is None):
            raise RegistryCallError("schemas get needs a subject or --id (one of them)")
        if args.id is not None:
            _show_schema(registry.call("GET", f"schemas/ids/{args.id}"), f"schema id {args.id}")
        else:
            found = registry.call("GET", f"subjects/{_quote(args.subject)}/versions/"
                                  f"{_quote(args.version)}")
            _show_schema(found, f"subject {found['subject']!r} version {found['version']}, "
                         f"id {found['id']}")
    elif args.action == "register":
        path, body = f"subjects/{_quote(args.subject)}", _schema_body(args)
        registered = registry.call("POST", f"{path}/versions", body)
        found = registry.call("POST", path, body)  # the version it is (Confluent: id only)
        print(f"registered under {args.subject!r}: version {found['version']}, "
              f"id {registered['id']}")
    else:
        versions = "versions" if args.version is None else f"versions/{_quote(args.version)}"
        answer = registry.call("POST", f"compatibility/subjects/{_quote(args.subject)}/"
                               f"{versions}?verbose=true", _schema_body(args))
        if answer["is_compatible"]:
            print(f"compatible with {args.subject!r}")
            return 0
        print(f"incompatible with {args.subject!r}:")
        for message in answer.get("messages", []):
            print(f"  {message}")
        return 1
    return 0
