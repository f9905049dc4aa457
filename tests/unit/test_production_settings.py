"""Production refuses to start without an erasure journal (erasures are journaled first)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings


def _production(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "production",
        "database_url": "postgresql+psycopg://passage_app@db/passage",
        "keys_dir": tmp_path / "keys",
        "base_url": "https://passage.example.org",
        "erasure_journal": tmp_path / "journal" / "erasures-node-a.log",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_production_needs_an_erasure_journal(tmp_path: Path) -> None:
    assert _production(tmp_path).erasure_journal == tmp_path / "journal" / "erasures-node-a.log"
    for unset in (None, ""):
        with pytest.raises(ValidationError, match="PASSAGE_ERASURE_JOURNAL must name"):
            _production(tmp_path, erasure_journal=unset)
