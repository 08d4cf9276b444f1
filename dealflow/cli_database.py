"""What the CLI says about the embedded database it uses: one line each, on stderr.

Without `DATABASE_URL` every command works on the embedded Postgres in the
per-user data folder. When a command starts that server it names it, so a
database that looks empty is never a mystery; and a `./.dealflow` left by an
older dealflow (which kept one database per folder) is pointed out, since it is
not the one in use. `database_in_use` names the database a command works on
(`dealflow --help` and `dealflow status` say it), its password masked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from state.embedded import set_announcer

if TYPE_CHECKING:
    from state.config import Settings

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


def database_in_use(settings: Settings) -> str:
    """The database `settings` name: the URL with its password masked, or the embedded one."""
    from state.database import redact_url

    if settings.database_url:
        return redact_url(settings.database_url)
    return f"embedded Postgres in {settings.data_dir.expanduser()}"


def database_from_env(url: str | None = None) -> str:
    """`database_in_use` of the environment (and `url`, a flag's), starting nothing."""
    from state.config import ConfigError, Settings

    try:
        return database_in_use(Settings.from_env(database_url=url))
    except ConfigError as exc:
        return f"not known: {exc}"
