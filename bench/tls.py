"""TLS beside plaintext: one `minikafka serve` with a PLAINTEXT and an SSL listener, the same
workloads through each, in one run (confluent-kafka, as in bench.broker).

Plaintext fetches leave by sendfile (the page cache straight to the socket); TLS cannot, since
the bytes must be encrypted in this process. The broker reads record slices from the page cache
(pread) a MiB at a time and writes each to the TLS transport, waiting for room before the next,
so encrypting one chunk overlaps with the client receiving and decrypting the previous one
(connection.py's _write_slice). The table shows what TLS costs: MB/s and CPU (% of one core,
the broker's and the client process's) for 100-byte records and for 16 KiB records in 1 MiB
batches, produce and fetch. A self-signed certificate is made with `openssl` for the run; large
runs are capped at 256 MiB a stream to keep the disk in bounds.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from rich.table import Table

from bench.broker import (
    LARGE_VALUE,
    VALUE,
    MiniKafka,
    Run,
    consume_runs,
    current_plan,
    median,
    produce_runs,
    started,
)
from minikafka.shop.ports import free_port


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "broker.pem", directory / "broker.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def run() -> Iterator[Table]:
    plan = current_plan()
    plan = replace(plan, large_bytes=min(plan.large_bytes, 256 << 20))
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp_name:
        tmp = Path(tmp_name)
        cert, key = self_signed(tmp)
        plain, tls = free_port(), free_port()
        argv = [sys.executable, "-m", "minikafka", "serve", "--no-ui", "--data-dir",
                str(tmp / "data"), "--log-level", "WARNING", "--listeners",
                f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}",
                "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
        rows: dict[str, dict[str, Run]] = {}
        with started("minikafka", argv, plain, tmp / "broker.log") as server:
            for name, target in (
                    ("PLAINTEXT", MiniKafka(server)),
                    ("SSL", MiniKafka(server, port=tls, settings={
                        "security.protocol": "SSL", "ssl.ca.location": str(cert)}))):
                for size in (VALUE, LARGE_VALUE):
                    produced = produce_runs(target, plan, size, f"{name}-{size}")
                    rows.setdefault(f"produce {size} B", {})[name] = median(
                        [run for _stream, run in produced])
                    rows.setdefault(f"fetch {size} B", {})[name] = consume_runs(
                        target, plan, size, produced)
    table = Table(title="TLS beside plaintext: one broker, a listener each (confluent-kafka; "
                  "CPU: % of one core, broker / client)")
    for column in ("workload", "PLAINTEXT MB/s", "CPU", "SSL MB/s", "CPU", "SSL ÷ plain"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for workload, runs in rows.items():
        plain_run, tls_run = runs["PLAINTEXT"], runs["SSL"]
        table.add_row(workload, f"{plain_run.mb_s:,.0f}", _cpu(plain_run), f"{tls_run.mb_s:,.0f}",
                      _cpu(tls_run), f"{tls_run.mb_s / plain_run.mb_s:.2f}")
    yield table


def _cpu(run: Run) -> str:
    return f"{run.server_share:.0%} / {run.client_share:.0%}"
