"""SIGKILL at every kill point of every step: no duplicate effect, no lost deal."""

from __future__ import annotations

from pathlib import Path

from tests.integration.crash_matrix import EFFECT_STEPS, PHASES, run_matrix, summary


def test_crash_matrix(database_url: str, tmp_path: Path) -> None:
    results = run_matrix(database_url, tmp_path, random_cases=4)
    report = summary(results)
    scheduled = [r for r in results if not r.name.startswith("random")]
    assert len(scheduled) == len(EFFECT_STEPS) * len(PHASES)
    assert all(r.killed for r in scheduled), report
    assert sum(r.duplicates for r in results) == 0, report
    assert [r.name for r in results if r.lost] == [], report
