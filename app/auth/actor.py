"""Who is acting: the authenticated user, their role and agency, for this request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    user_id: uuid.UUID | None
    role: str
    agency_id: uuid.UUID | None
    agency_type: str | None = None
    country: str | None = None
    session_id: uuid.UUID | None = None
    username: str | None = None
    # Case ids granted by an active break-glass, computed per request.
    break_glass_case_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)

    @classmethod
    def system(cls, purpose: str = "system") -> Actor:
        return cls(user_id=None, role=purpose, agency_id=None)
