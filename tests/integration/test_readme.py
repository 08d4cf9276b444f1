"""The README's Python tour runs as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, cli_env


def test_readme_python_tour_runs(database_url: str) -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"### From Python\n\n```python\n(.*?)```", readme, re.S)
    assert code is not None
    script = code.group(1) + (
        "\nstate = graph.get_state(config)\n"
        "assert state.values['outcome'] == 'completed', state.values.get('outcome')\n"
        "print('tour ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=cli_env(database_url),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tour ok" in done.stdout


def test_readme_async_script_runs_as_a_file(database_url: str, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"A complete script \(`python async_tour.py`\):\n\n```python\n(.*?)```",
                     readme, re.S)
    assert code is not None
    script = tmp_path / "async_tour.py"  # pasted into a file, run from another folder
    script.write_text(code.group(1))
    done = subprocess.run([sys.executable, str(script)], env=cli_env(database_url),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "('await_signature',)"


def test_readme_names_files_the_repository_has() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "--lead examples/lead.json" in readme and "--lead lead.json" not in readme
    lead = json.loads((ROOT / "examples" / "lead.json").read_text())
    assert lead["contact_email"] == "dana@example.com"  # the tour's output names her
    assert "ENV-000012" not in readme  # the webhook example reads the envelope id (jq)
