"""The fuzzing engine's own promises: its seeds are valid requests the codec decodes, and its
frames are the same for the same seed (a failure can be replayed from the seed printed)."""

from __future__ import annotations

from minikafka.broker.handlers import build_registry
from minikafka.protocol.codec import decode_request, parse_header

from .fuzz import CORPUS, frames, read_corpus, served_seeds

SERVED = {key: (api.min_version, api.max_version) for key, api in build_registry().items()}


def test_seeds_cover_every_served_version_and_decode() -> None:
    seeds = served_seeds(SERVED)
    assert len(seeds) == sum(high - low + 1 for low, high in SERVED.values())
    for frame in seeds + read_corpus():
        header, pos = parse_header(frame)
        assert header.api_key in SERVED
        decode_request(header, frame, pos)


def test_the_recorded_corpus_holds_real_clients_traffic_and_stays_small() -> None:
    keys = {parse_header(frame)[0].api_key for frame in read_corpus()}
    assert {0, 1, 3, 8, 11, 19} <= keys  # produce, fetch, metadata, commit, join, create
    assert CORPUS.stat().st_size < 200_000


def test_frames_are_deterministic_per_seed() -> None:
    seeds = served_seeds(SERVED)
    assert list(frames(7, 300, seeds, SERVED)) == list(frames(7, 300, seeds, SERVED))
    assert list(frames(7, 300, seeds, SERVED)) != list(frames(8, 300, seeds, SERVED))
