"""The embedded database's folder: one per user, whatever folder a command runs in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dealflow.cli_database import legacy_note
from state.config import Settings, user_data_dir


def test_the_default_is_per_user_not_per_folder(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert Settings().data_dir == tmp_path / "home" / ".local" / "share" / "dealflow"
    assert Settings.from_env({}).data_dir == Settings().data_dir  # not ./.dealflow
    monkeypatch.setenv("XDG_DATA_HOME", "/srv/data")
    assert Settings().data_dir == Path("/srv/data/dealflow")
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")  # not absolute: ignored (XDG spec)
    assert Settings().data_dir == tmp_path / "home" / ".local" / "share" / "dealflow"
    monkeypatch.setenv("XDG_DATA_HOME", "/x")
    assert user_data_dir() == Path("/x/dealflow")  # platformdirs' user data folder
    assert Settings.from_env({"DEALFLOW_DATA_DIR": ".dealflow"}).data_dir == Path(".dealflow")


def test_an_older_per_folder_database_is_pointed_out(tmp_path: Path) -> None:
    in_use = tmp_path / "share" / "dealflow" / "pgdata"
    assert legacy_note(in_use, cwd=tmp_path) is None
    (tmp_path / ".dealflow" / "pgdata").mkdir(parents=True)
    assert legacy_note(in_use, cwd=tmp_path) is None  # an empty folder holds no database
    (tmp_path / ".dealflow" / "pgdata" / "PG_VERSION").write_text("18\n")
    note = legacy_note(in_use, cwd=tmp_path)
    assert note is not None and "\n" not in note
    assert note.startswith(f"dealflow: note: {tmp_path / '.dealflow' / 'pgdata'} holds an older")
    assert f"DEALFLOW_DATA_DIR={tmp_path / '.dealflow'} uses it" in note
    assert legacy_note((tmp_path / ".dealflow" / "pgdata").resolve(), cwd=tmp_path) is None
    assert os.sep in note
