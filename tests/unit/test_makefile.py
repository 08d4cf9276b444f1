"""The Makefile's targets run when asked: a target named like a folder must be phony."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_target_named_like_a_file_or_folder_is_phony() -> None:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = set(re.search(r"^\.PHONY:(.*)$", text, re.MULTILINE).group(1).split())  # type: ignore[union-attr]
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.MULTILINE))
    shadowed = {t for t in targets if (ROOT / t).exists()}
    assert "bench" in shadowed  # the bench/ package: `make bench` said "up to date" and ran nothing
    assert shadowed <= phony, f"targets that make would take for files: {shadowed - phony}"
