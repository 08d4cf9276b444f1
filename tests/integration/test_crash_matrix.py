"""SIGKILL at every kill point of every step: no duplicate effect, no lost deal."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.workflow import DEFAULT_WORKFLOW
from tests.integration.crash_matrix import kill_points, run_matrix, summary


@pytest.mark.timeout(1500)  # about 130 CLI processes: minutes on a loaded 2-core machine
def test_crash_matrix(database_url: str, tmp_path: Path) -> None:
    results = run_matrix(database_url, tmp_path, random_cases=4)
    report = summary(results)
    scheduled = [r for r in results if not r.name.startswith("random")]
    assert [r.name for r in scheduled] == [f"{s}:{p}" for s, p in kill_points(DEFAULT_WORKFLOW)]
    assert all(r.killed for r in scheduled), report
    assert sum(r.duplicates for r in results) == 0, report
    assert [r.name for r in results if r.lost] == [], report
