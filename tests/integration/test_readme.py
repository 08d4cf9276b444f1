"""The README's Python tour runs as written."""

from __future__ import annotations

import re
import subprocess
import sys

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
