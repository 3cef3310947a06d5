"""What `python -m bench shop` calls throughput: the steady rate at which orders complete."""

from __future__ import annotations

from bench.shop import completion_rate


def test_a_shop_keeping_up_with_1000_orders_a_second_shows_1000_whatever_one_trip_takes() -> None:
    trip = 0.09  # each order's POST → completed: the pipeline's fill time, not its rate
    completed_at = [100 + n / 1000 + trip for n in range(4000)]
    assert round(completion_rate(completed_at)) == 1000


def test_a_shop_falling_behind_shows_the_rate_it_completes_at() -> None:
    completed_at = [100 + n / 800 for n in range(4000)]  # offered faster; done at 800/s
    assert round(completion_rate(completed_at)) == 800
