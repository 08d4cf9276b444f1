"""Execute the notebooks headless (nbclient) and save their outputs in place.

`python notebooks/run_notebooks.py [NAME ...]` prints the time each one took;
it exits non-zero if a cell fails.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def execute(path: Path, save: bool = True, timeout: int = 300) -> float:
    """Run every cell of `path` top to bottom; return the seconds it took."""
    notebook = nbformat.read(path, as_version=4)
    started = time.monotonic()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    took = time.monotonic() - started
    if save:
        nbformat.write(notebook, path)
    return took


def main(names: list[str]) -> int:
    """Execute the named notebooks (default: all)."""
    paths = [HERE / f"{n}.ipynb" for n in names] or sorted(HERE.glob("[0-9]*.ipynb"))
    for path in paths:
        print(f"{path.name:<32} {execute(path):6.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
