"""`dealflow` commands in processes forked from a warm parent: the CLI's imports, paid once.

A new `dealflow` process spends seconds importing LangGraph and langchain
before it reads its first argument, and the crash matrix starts about 130 of
them. Here each command runs in a child that multiprocessing's forkserver
forks from a process that has already imported the CLI: a process of its own,
with its own environment, its own connections and its own exit status, killed
by a real SIGKILL at a kill point. Only the imported modules are shared; no
connection, pool or setting exists before the fork (`Settings.from_env` reads
the child's environment when the command runs).

The installed console script runs the same `dealflow.cli.main`; `run_cli` in
tests/conftest.py still starts it cold wherever the entry point itself is under test.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import subprocess
import sys
import tempfile
from multiprocessing.context import ForkServerContext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# imported once, before any fork (`dealflow.cli` itself imports no graph: the commands do)
PRELOAD = ["dealflow.cli", "dealflow.cli_commands", "tests.integration.counting"]


def _context() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _command(argv: list[str], env: dict[str, str], out: str, err: str, cwd: str | None) -> None:
    """The child: the command's environment, directory and output files, then the CLI.

    It ends as the interpreter ends a process: the exit functions run (the held
    writes' last save, an embedded server's cleanup), then the exit status.
    """
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    from dealflow.cli import main

    try:
        code = main(argv)
    finally:
        atexit._run_exitfuncs()
    sys.exit(code)


class WarmProcess:
    """One `dealflow` command running in a forked child (like `subprocess.Popen`)."""

    def __init__(self, args: list[str], env: dict[str, str], capture: bool = True,
                 cwd: Path | None = None) -> None:
        """Start `dealflow *args` with exactly the environment `env`, in `cwd` if given.

        Its output goes to files that `result()` reads, or to /dev/null without `capture`.
        """
        self.args = ["dealflow", *args]
        self._out, self._err = (_scratch("out"), _scratch("err")) if capture else (
            os.devnull, os.devnull)
        command = (args, env, self._out, self._err, str(cwd) if cwd else None)
        self._process = _context().Process(target=_command, args=command, daemon=True)
        self._process.start()

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self._process.pid is not None
        return self._process.pid

    def kill(self) -> None:
        """SIGKILL the child."""
        self._process.kill()

    def wait(self, timeout: float | None = None) -> int:
        """The exit status: the command's exit code, or -9 after a SIGKILL."""
        self._process.join(timeout)
        if self._process.exitcode is None:
            self.kill()
            self._process.join()
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._process.exitcode

    def result(self, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Wait, then the exit status with everything the command printed."""
        try:
            code = self.wait(timeout)
            return subprocess.CompletedProcess(self.args, code, _read(self._out),
                                               _read(self._err))
        finally:
            for path in (self._out, self._err):
                if path != os.devnull:
                    Path(path).unlink(missing_ok=True)


def _scratch(name: str) -> str:
    handle, path = tempfile.mkstemp(prefix=f"dfcli-{name}-")
    os.close(handle)
    return path


def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8", errors="replace")


def run_warm(args: list[str], env: dict[str, str], cwd: Path | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `dealflow *args` in a warm child and wait (like `subprocess.run`, output captured)."""
    return WarmProcess(args, env, cwd=cwd).result(timeout)
