"""`make notebooks` leaves an unchanged tree clean; `make jupyter` opens them interactively."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat

from notebooks.make_notebooks import NOTEBOOKS, build
from notebooks.run_notebooks import HERE, never_run, tidy

ROOT = Path(__file__).resolve().parents[2]


def test_building_twice_writes_the_same_bytes_then_nothing(tmp_path: Path) -> None:
    assert [p.name for p in build(tmp_path)] == [f"{name}.ipynb" for name in NOTEBOOKS]
    first = {p.name: p.read_bytes() for p in tmp_path.glob("*.ipynb")}
    assert build(tmp_path) == []
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.ipynb")} == first
    for path in tmp_path.glob("*.ipynb"):
        assert never_run(path)


def test_the_committed_notebooks_are_what_make_notebooks_writes(tmp_path: Path) -> None:
    for path in HERE.glob("[0-9]*.ipynb"):
        shutil.copy(path, tmp_path / path.name)
    assert build(tmp_path) == []  # run `make notebooks` after editing make_notebooks.py
    for path in tmp_path.glob("*.ipynb"):
        assert not never_run(path), f"{path.name} is committed without its outputs"
        text = path.read_text()
        assert '"execution": {' not in text and "iopub." not in text, path.name


def test_tidy_drops_what_changes_on_every_run() -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1", id="c00")])
    notebook.cells[0].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    notebook.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    tidied = tidy(notebook)
    assert tidied.cells[0].metadata == {}
    assert tidied.metadata["language_info"] == {"name": "python"}


def test_make_jupyter_opens_the_notebooks_from_an_optional_extra() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^jupyter: .*##", makefile, re.M)
    assert '-e ".[notebooks]"' in makefile and "jupyter lab --ServerApp.root_dir=notebooks" \
        in makefile
    assert re.search(r'^notebooks = \["jupyterlab[^"]*"\]', (ROOT / "pyproject.toml").read_text(),
                     re.M)
    assert re.search(r"^jupyterlab==", (ROOT / "constraints.txt").read_text(), re.M)
