"""Metadata files: replaced atomically, and a damaged one is an error that names it (never a new
empty state written over it). Covers the broker's `meta.properties` and `producer-ids` too, which
use the same helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from minikafka.broker.meta import META_FILE, load_cluster_id
from minikafka.log import LogManager
from minikafka.log.durable import MetadataFileError, write_atomically
from minikafka.log.producer_ids import STATE_FILE, ProducerIdManager

OpenLog = Callable[..., LogManager]


def test_write_atomically_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_atomically(path, "old")
    write_atomically(path, b"new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize("content", [
    "{not json", '["a", "list"]', '{"partitions": "three"}', '{"configs": {}}',
    '{"partitions": 1, "configs": {"retention.ms": "soon"}}', "\xff\xfe",
])
def test_damaged_topic_config_is_an_error_naming_the_file(open_log: OpenLog, data_dir: Path,
                                                         content: str) -> None:
    open_log().create_topic("t", 1)
    path = data_dir / "__meta" / "topics" / "t.json"
    path.write_bytes(content.encode("latin-1"))
    log = open_log()
    assert log.topics() == ["t"]
    with pytest.raises(MetadataFileError, match=str(path)):
        log.partition("t", 0)
    assert path.read_bytes() == content.encode("latin-1")  # left for the operator


def test_topic_config_is_written_with_the_durable_helper(open_log: OpenLog, data_dir: Path
                                                         ) -> None:
    log = open_log()
    log.create_topic("t", 2)
    log.add_partitions("t", 3)
    assert log.topic_config("t").partitions == 3
    assert sorted(p.name for p in (data_dir / "__meta" / "topics").iterdir()) == ["t.json"]


def test_cluster_id_is_kept_and_a_damaged_file_is_an_error(tmp_path: Path) -> None:
    cluster_id = load_cluster_id(tmp_path, 1)
    assert load_cluster_id(tmp_path, 1) == cluster_id
    (tmp_path / META_FILE).write_text("version=1\nnode.id=0\n")
    with pytest.raises(MetadataFileError, match=META_FILE):
        load_cluster_id(tmp_path, 1)


def test_producer_id_blocks_survive_and_a_damaged_file_is_an_error(tmp_path: Path) -> None:
    first = ProducerIdManager(tmp_path).allocate()
    assert ProducerIdManager(tmp_path).allocate() > first
    (tmp_path / STATE_FILE).write_text("twelve\n")
    with pytest.raises(MetadataFileError, match=STATE_FILE):
        ProducerIdManager(tmp_path)
