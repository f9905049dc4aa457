"""Every table that holds keys wrapped by a KEK is in the registry that rotation walks."""

from __future__ import annotations

import app.db.models  # noqa: F401  (every model registers itself)
from app.crypto import wrapped
from app.db.base import Base


def test_every_table_with_wrapped_keys_is_registered_for_rotation() -> None:
    holding = {
        mapper.class_
        for mapper in Base.registry.mappers
        if {"kek_kid", "wrapped_key"} <= set(mapper.columns.keys())
    }
    registered = {kind.model for kind in wrapped.kinds()}
    assert holding == registered
    assert {kind.name for kind in wrapped.kinds()} >= {"victim_data_keys", "exchange_keys"}
    for kind in wrapped.kinds():
        assert {"id", "rewrapped_at"} <= set(kind.model.__table__.columns.keys())
