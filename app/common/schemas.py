"""Shared pydantic building blocks: strict inputs, bounded strings, sane dates."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from app.db.base import utcnow


class StrictInput(BaseModel):
    """Every input model: unknown keys refused (mass assignment), strings bounded and trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, str_max_length=5000)


Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=300)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=5000)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^[a-z0-9_\-]+$")]
Phone = Annotated[
    str, StringConstraints(min_length=6, max_length=25, pattern=r"^\+?[0-9 ()\-]{6,24}$")
]
Email = Annotated[
    str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
]
DocumentNumber = Annotated[str, StringConstraints(min_length=1, max_length=60)]


def _not_future(value: date) -> date:
    if value > utcnow().date():
        raise ValueError("date cannot be in the future")
    if value < date(1900, 1, 1):
        raise ValueError("date cannot be before 1900-01-01")
    return value


PastDate = Annotated[date, AfterValidator(_not_future)]
