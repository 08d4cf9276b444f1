"""What the CLI says about the embedded database it uses: one line each, on stderr.

Without `DATABASE_URL` every command works on the embedded Postgres in the
per-user data folder. When a command starts that server it names it, so a
database that looks empty is never a mystery; and a `./.dealflow` left by an
older dealflow (which kept one database per folder) is pointed out, since it is
not the one in use.
"""

from __future__ import annotations

import sys
from pathlib import Path

from state.embedded import set_announcer

LEGACY_DIR = Path(".dealflow")


def announce_embedded(quiet: bool) -> None:
    """Have this process say which embedded Postgres it uses (`quiet`: only the warnings)."""
    def announce(pgdata: Path, started: bool) -> None:
        if started and not quiet:
            print(f"dealflow: started the embedded Postgres in {pgdata} (DATABASE_URL or "
                  "--database-url for another server)", file=sys.stderr, flush=True)
        note = legacy_note(pgdata)
        if note:
            print(note, file=sys.stderr, flush=True)

    set_announcer(announce)


def legacy_note(pgdata: Path, cwd: Path | None = None) -> str | None:
    """One line about an older per-folder database in `cwd` that is not `pgdata`, or None."""
    old = (cwd or Path.cwd()) / LEGACY_DIR / "pgdata"
    if not (old / "PG_VERSION").is_file() or old.resolve() == pgdata:
        return None
    return (f"dealflow: note: {old} holds an older dealflow's per-folder database, not the "
            f"one in use; DEALFLOW_DATA_DIR={old.parent} uses it, or move it to {pgdata} "
            "while no dealflow runs")
