"""Every notebook runs top to bottom, headless, on real Postgres."""

from __future__ import annotations

import pytest

from notebooks.run_notebooks import HERE, execute

NOTEBOOKS = sorted(p.name for p in HERE.glob("[0-9]*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS == ["01_quickstart.ipynb", "02_failure_and_resume.ipynb",
                         "03_time_travel.ipynb", "04_context_audit_trace.ipynb"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name: str, database_url: str, monkeypatch: pytest.MonkeyPatch
                           ) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)  # the kernel inherits the environment
    assert execute(HERE / name, save=False) > 0
