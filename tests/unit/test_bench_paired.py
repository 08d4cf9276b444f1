"""`make bench`'s paired rounds: both sides of a ratio sampled in alternation, none lost."""

from __future__ import annotations

from bench.paired import Side, paired_rounds, pooled, spread


def test_paired_rounds_alternate_the_order_and_keep_every_rounds_samples() -> None:
    calls: list[str] = []

    def batch(name: str, value: float) -> Side[list[float]]:
        def run() -> list[float]:
            calls.append(name)
            return [value, value + len(calls)]
        return Side(name, run)

    sides = (batch("a", 1.0), batch("b", 10.0))
    paired_rounds(4, sides)

    # each round runs every side once, the first side going first only every other round,
    # so a side never always runs on the heels of the other one's load
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert [len(side.samples) for side in sides] == [4, 4]
    assert pooled(sides[0]) == [1.0, 2.0, 1.0, 5.0, 1.0, 6.0, 1.0, 9.0]


def test_spread_reports_the_lowest_median_and_highest_round() -> None:
    assert spread([2.5, 1.0, 4.0]) == {"min": 1.0, "median": 2.5, "max": 4.0}
