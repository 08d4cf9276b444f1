"""Execute the notebooks headless (nbclient); save the outputs of those that need them.

`python notebooks/run_notebooks.py [--refresh] [NAME ...]` runs each notebook
top to bottom and prints the time it took; it exits non-zero if a cell fails.
A notebook whose cells were never run (just rewritten by `make_notebooks.py`)
is saved with its outputs; the others are only checked, so their committed
outputs (deal ids and times of a real run) stay as they are and `git status`
stays clean. `--refresh` saves every one. Saved notebooks carry no run
timestamps (`tidy`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def execute(path: Path, save: bool = True, timeout: int = 300) -> float:
    """Run every cell of `path` top to bottom; return the seconds it took (`save`: in place)."""
    notebook = nbformat.read(path, as_version=4)
    started = time.monotonic()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    took = time.monotonic() - started
    if save:
        nbformat.write(tidy(notebook), path)
    return took


def tidy(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`notebook` without what changes on every run: cell timestamps, the Python patch level."""
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    notebook.metadata.get("language_info", {}).pop("version", None)
    return notebook


def never_run(path: Path) -> bool:
    """Whether `path` has a code cell that was never executed (no outputs saved yet)."""
    notebook = nbformat.read(path, as_version=4)
    return any(cell.cell_type == "code" and cell.get("execution_count") is None
               for cell in notebook.cells)


def main(argv: list[str]) -> int:
    """Execute the named notebooks (default: all); save the never-run ones (or all)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refresh", action="store_true",
                        help="save the outputs of every notebook, not only never-run ones")
    parser.add_argument("names", nargs="*", metavar="NAME", help="e.g. 01_quickstart")
    args = parser.parse_args(argv)
    paths = [HERE / f"{n}.ipynb" for n in args.names] or sorted(HERE.glob("[0-9]*.ipynb"))
    for path in paths:
        save = args.refresh or never_run(path)
        took = execute(path, save=save)
        print(f"{path.name:<32} {took:6.1f}s  {'saved' if save else 'checked'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
