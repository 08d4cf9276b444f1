"""Shared fixtures: a real Postgres (TEST_DATABASE_URL or the embedded server).

Integration tests each get a throwaway database cloned from a migrated template,
so they never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from state.config import Settings
from state.database import close_shared_pools, open_pool
from state.embedded import embedded_database_url

ROOT = Path(__file__).resolve().parent.parent


def _admin_url(tmp_root: Path) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return embedded_database_url(tmp_root)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL on the test server."""
    tmp_root = Path(tempfile.mkdtemp(prefix="dftest-", dir="/tmp"))
    try:
        yield _admin_url(tmp_root)
    finally:
        close_shared_pools()
        shutil.rmtree(tmp_root, ignore_errors=True)


def _create_db(admin_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        suffix = f" TEMPLATE {template}" if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    return make_conninfo(admin_url, dbname=name)


def _drop_db(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A database with the checkpointer tables and our migrations, to clone from."""
    from state.checkpointer import setup_database

    name = f"dftpl_{os.getpid()}"
    _drop_db(pg_admin_url, name)
    url = _create_db(pg_admin_url, name)
    pool = open_pool(url)
    setup_database(pool)
    pool.close()
    yield name
    _drop_db(pg_admin_url, name)


@pytest.fixture
def database_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"dft_{uuid.uuid4().hex[:12]}"
    url = _create_db(pg_admin_url, name, template=template_db)
    yield url
    close_shared_pools()
    _drop_db(pg_admin_url, name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings on the test database with fast, deterministic retries."""
    return Settings(database_url=database_url, retry_initial_interval=0.01, retry_jitter=False)


@pytest.fixture
def service(settings: Settings) -> Iterator[object]:
    """A `DealService` on the test database."""
    from dealflow.api import DealService

    with DealService(settings) as svc:
        yield svc


def cli_env(database_url: str | None, **extra: str) -> dict[str, str]:
    """The environment for a `dealflow` subprocess (no inherited DEALFLOW_* settings)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DEALFLOW_") and k != "DATABASE_URL"}
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update({"DEALFLOW_RETRY_INITIAL_INTERVAL": "0.01", "DEALFLOW_RETRY_JITTER": "false"})
    env.update(extra)
    return env


def dealflow_executable() -> str:
    """The installed `dealflow` console script next to this interpreter."""
    path = Path(sys.executable).parent / "dealflow"
    assert path.exists(), f"dealflow is not installed in {path.parent} (run make install)"
    return str(path)


def run_cli(args: list[str], env: dict[str, str], cwd: Path | None = None,
            timeout: float = 120, cold: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `dealflow *args` as a separate process; its exit status and output.

    The process is forked from a parent that has imported the CLI once
    (`tests.integration.warm_cli`: the same `main`, environment and exit status,
    without seconds of imports per command); `cold` starts the installed console script.
    """
    if not cold:
        from tests.integration.warm_cli import run_warm

        return run_warm(args, env, cwd=cwd, timeout=timeout)
    return subprocess.run([dealflow_executable(), *args], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=timeout, check=False)
