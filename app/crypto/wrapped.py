"""Every kind of key that a key-encryption key (KEK) wraps, in one registry.

Rotation, retirement, `passage keys status` and the backup manifest all walk this registry,
so a new kind of wrapped key (victim data keys, transnational exchange keys, any future one)
is rotated and counted as soon as its model module registers it. A kind is a table with the
columns `id`, `kek_kid`, `wrapped_key` and `rewrapped_at`, and the additional data that binds
each wrapped key to its row. `tests/unit/test_wrapped_keys.py` fails if a mapped table has
those columns without being registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Stored instead of a KEK id when encryption is disabled (benchmark baseline only).
PLAIN_KID = "plain"


@dataclass(frozen=True)
class WrappedKeyKind:
    #: Stable name used in reports (`keys status`, the backup manifest).
    name: str
    #: The mapped class; its table holds id, kek_kid, wrapped_key, rewrapped_at.
    model: Any
    #: Additional data for a row wrapped under a KEK: (kek id, row) -> bytes.
    aad: Callable[[str, Any], bytes]

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)


_KINDS: dict[str, WrappedKeyKind] = {}


def register(kind: WrappedKeyKind) -> WrappedKeyKind:
    known = _KINDS.get(kind.name)
    if known is not None and known.model is not kind.model:
        raise ValueError(f"two wrapped-key kinds are named {kind.name}")
    _KINDS[kind.name] = kind
    return kind


def kinds() -> list[WrappedKeyKind]:
    """Registered kinds (import `app.db.models` first so that every model has registered)."""
    return list(_KINDS.values())
