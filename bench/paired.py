"""Paired rounds: the two sides of a ratio timed in alternation, under the same load.

A ratio of two figures measured minutes apart on a shared machine measures the
machine's drift as much as the code: on a 2-core VM with steal time, a floor
moved by 60% from one run to the next. So each ratio's sides are sampled in
rounds, each round running every side once (in reversed order every other
round), and each figure pools its samples over all rounds. The figures keep
their definitions; only when they are sampled changes. Each round's own ratio
is kept too, so the table shows how far one round strays from another.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Batch = TypeVar("Batch")


@dataclass
class Side(Generic[Batch]):
    """One side of a paired measure: `run()` does one batch; each round's result is kept."""

    name: str
    run: Callable[[], Batch]
    samples: list[Batch] = field(default_factory=list)


def pooled(side: Side[list[float]]) -> list[float]:
    """Every sample of every round of a side whose batches are lists of seconds."""
    return [value for batch in side.samples for value in batch]


def paired_rounds(rounds: int, sides: Sequence[Side[Any]]) -> None:
    """Run each side once per round, alternating their order; samples land on the sides."""
    for number in range(rounds):
        order = sides if number % 2 == 0 else tuple(reversed(sides))
        for side in order:
            side.samples.append(side.run())


def spread(values: Sequence[float]) -> dict[str, float]:
    """The lowest, the median and the highest of the rounds' own figures."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}
