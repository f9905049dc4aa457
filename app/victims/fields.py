"""The registry of sealed personal fields: which table and visibility group each belongs to.

Every personal field is listed here exactly once. Models declare a LargeBinary column of the
same name; visibility policies refer to fields or groups; tests walk this registry to prove
nothing personal is stored in clear.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SealedField:
    name: str
    table: str
    group: str


def _fields(table: str, groups: dict[str, tuple[str, ...]]) -> tuple[SealedField, ...]:
    return tuple(SealedField(n, table, g) for g, names in groups.items() for n in names)


VICTIM_FIELDS = _fields(
    "victims",
    {
        "identity": (
            "given_name",
            "family_name",
            "aliases",
            "date_of_birth",
            "estimated_age",
            "age_uncertain",
            "sex",
            "gender_identity",
            "nationalities",
            "languages",
            "interpreter_needed",
        ),
        "documents": ("documents",),
        "contact": ("phone", "email"),
        "location": ("current_location", "current_address"),
        "accommodation": ("accommodation",),
        "vulnerability": ("unaccompanied_minor", "pregnant", "disability"),
        "health": ("health_notes",),
    },
)

CASE_FIELDS = _fields(
    "cases",
    {
        "exploitation": (
            "exploitation_acts",
            "exploitation_means",
            "exploitation_form_details",
            "labour_sector",
            "online_exploitation",
            "countries_of_recruitment",
            "countries_of_transit",
            "countries_of_exploitation",
            "exploitation_start",
            "exploitation_end",
        ),
        "detection": ("detection_place", "indicators"),
        "needs": ("needs_assessment", "support_plan"),
        "statements": ("statement_summary",),
    },
)

NOTE_FIELDS = _fields("case_notes", {"notes": ("body",)})

ALL_SEALED_FIELDS = VICTIM_FIELDS + CASE_FIELDS + NOTE_FIELDS
FIELD_GROUPS: dict[str, tuple[str, ...]] = {}
for _f in ALL_SEALED_FIELDS:
    FIELD_GROUPS.setdefault(_f.group, ())
    FIELD_GROUPS[_f.group] += (_f.name,)
FIELD_BY_NAME = {f.name: f for f in ALL_SEALED_FIELDS}
