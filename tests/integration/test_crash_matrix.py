"""SIGKILL at every kill point of every step: no duplicate effect, no lost deal."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.workflow import DEFAULT_WORKFLOW
from state.crash import INPUT_HELD
from tests.integration.crash_matrix import (
    LEAD,
    Launcher,
    kill_points,
    run_case,
    run_matrix,
    summary,
)


@pytest.mark.timeout(900)  # about 130 CLI processes, forked warm: minutes on a loaded machine
def test_crash_matrix(database_url: str, tmp_path: Path) -> None:
    results = run_matrix(database_url, tmp_path, random_cases=4)
    report = summary(results)
    scheduled = [r for r in results if not r.name.startswith("random")]
    assert [r.name for r in scheduled] == [f"{s}:{p}" for s, p in kill_points(DEFAULT_WORKFLOW)]
    assert all(r.killed for r in scheduled), report
    assert sum(r.duplicates for r in results) == 0, report
    assert [r.name for r in results if r.lost] == [], report


# 0: `dealflow recover`, every process the installed console script, started cold;
# 1: the same command again, forked warm as in the matrix.
@pytest.mark.parametrize(("index", "cold"), [(0, True), (1, False)])
def test_a_kill_with_the_input_checkpoint_held_loses_nothing(database_url: str, tmp_path: Path,
                                                             index: int, cold: bool) -> None:
    lead = tmp_path / "lead.json"
    lead.write_text(LEAD)
    result = run_case(database_url, str(lead), *INPUT_HELD, index, Launcher(cold=cold))
    assert result.killed and result.status == "completed", summary([result])
    assert result.duplicates == 0 and not result.lost, summary([result])
