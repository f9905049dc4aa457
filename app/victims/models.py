from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, TimestampMixin

Sealed = LargeBinary  # every personal column holds an envelope from app.crypto.envelope


class Victim(IdMixin, TimestampMixin, Base):
    """A presumed or identified victim. Every personal column is sealed (see fields.py)."""

    __tablename__ = "victims"

    registered_by_agency_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agencies.id"), index=True
    )
    erased_at: Mapped[datetime | None] = mapped_column()

    given_name: Mapped[bytes | None] = mapped_column(Sealed)
    family_name: Mapped[bytes | None] = mapped_column(Sealed)
    aliases: Mapped[bytes | None] = mapped_column(Sealed)
    date_of_birth: Mapped[bytes | None] = mapped_column(Sealed)
    estimated_age: Mapped[bytes | None] = mapped_column(Sealed)
    age_uncertain: Mapped[bytes | None] = mapped_column(Sealed)
    sex: Mapped[bytes | None] = mapped_column(Sealed)
    gender_identity: Mapped[bytes | None] = mapped_column(Sealed)
    nationalities: Mapped[bytes | None] = mapped_column(Sealed)
    languages: Mapped[bytes | None] = mapped_column(Sealed)
    interpreter_needed: Mapped[bytes | None] = mapped_column(Sealed)
    documents: Mapped[bytes | None] = mapped_column(Sealed)
    phone: Mapped[bytes | None] = mapped_column(Sealed)
    email: Mapped[bytes | None] = mapped_column(Sealed)
    current_location: Mapped[bytes | None] = mapped_column(Sealed)
    current_address: Mapped[bytes | None] = mapped_column(Sealed)
    accommodation: Mapped[bytes | None] = mapped_column(Sealed)
    unaccompanied_minor: Mapped[bytes | None] = mapped_column(Sealed)
    pregnant: Mapped[bytes | None] = mapped_column(Sealed)
    disability: Mapped[bytes | None] = mapped_column(Sealed)
    health_notes: Mapped[bytes | None] = mapped_column(Sealed)
