"""What may leave the country: the minimal dataset per purpose, cut down to the consent.

A field group crosses the border only when all three hold:

1. the purpose needs it (``PURPOSE_GROUPS``);
2. a recorded consent of this episode, of an accepted purpose, naming the partner's agency
   as recipient, neither withdrawn nor expired, lists it in its scope;
3. it is not one of the groups that never leave (``NEVER_SENT``): where the person is
   and stays, how they were found, statements to the police and case notes. The research
   notes "send no location data to the country of origin before return is confirmed";
   statements belong to mutual legal assistance, not to a referral.

The preview shows the same computation without decrypting anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cases.models import Case, Consent
from app.crypto.service import Codec
from app.transnational.vocab import PackagePurpose
from app.victims.fields import FIELD_BY_NAME, FIELD_GROUPS
from app.victims.models import Victim

PURPOSE_GROUPS: dict[PackagePurpose, tuple[str, ...]] = {
    # Verify nationality and identity, issue travel documents, prepare care on arrival.
    PackagePurpose.return_preparation: (
        "identity",
        "documents",
        "vulnerability",
        "health",
        "needs",
    ),
    # Identity or nationality verification only (e.g. Bulgaria's SOP step 1).
    PackagePurpose.request_for_information: ("identity", "documents"),
    # Case management moves to the partner: what the receiving case worker needs.
    PackagePurpose.case_management_handover: (
        "identity",
        "documents",
        "contact",
        "vulnerability",
        "health",
        "exploitation",
        "needs",
    ),
    # After return: how the person is doing, nothing about who they are.
    PackagePurpose.post_return_follow_up: ("needs",),
}

PURPOSE_CONSENTS: dict[PackagePurpose, frozenset[str]] = {
    PackagePurpose.return_preparation: frozenset(
        {"return_preparation", "data_sharing_transnational"}
    ),
    PackagePurpose.request_for_information: frozenset({"data_sharing_transnational"}),
    PackagePurpose.case_management_handover: frozenset({"data_sharing_transnational"}),
    PackagePurpose.post_return_follow_up: frozenset({"data_sharing_transnational"}),
}

NEVER_SENT = frozenset({"location", "accommodation", "detection", "statements", "notes"})


@dataclass(frozen=True)
class ConsentCheck:
    purpose: PackagePurpose
    consent_ids: list[uuid.UUID]
    consented_groups: list[str]
    groups: list[str]
    excluded: dict[str, str]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.groups)


def valid_consents(
    session: Session,
    case: Case,
    recipient_agency_id: uuid.UUID,
    purposes: Iterable[str],
    today: date,
) -> list[Consent]:
    """Consents of the current episode naming this recipient, for one of these purposes,
    given, not withdrawn and not expired."""
    stmt = select(Consent).where(
        Consent.case_id == case.id,
        Consent.recipient_agency_id == recipient_agency_id,
        Consent.purpose.in_(sorted(set(purposes))),
        Consent.withdrawn_at.is_(None),
        Consent.created_at >= case.episode_started_at,
    )
    return [
        c
        for c in session.scalars(stmt.order_by(Consent.created_at))
        if c.given_on <= today and (c.expires_on is None or c.expires_on >= today)
    ]


def check_consent(
    session: Session,
    case: Case,
    recipient_agency_id: uuid.UUID,
    purpose: PackagePurpose,
    today: date,
) -> ConsentCheck:
    consents = valid_consents(session, case, recipient_agency_id, PURPOSE_CONSENTS[purpose], today)
    consented = sorted({g for c in consents for g in c.scope if g in FIELD_GROUPS})
    groups: list[str] = []
    excluded: dict[str, str] = {}
    for group in sorted(FIELD_GROUPS):
        if group in NEVER_SENT:
            excluded[group] = "never_leaves_the_country"
        elif group not in PURPOSE_GROUPS[purpose]:
            excluded[group] = "not_needed_for_this_purpose"
        elif group not in consented:
            excluded[group] = "not_covered_by_consent"
        else:
            groups.append(group)
    problems: list[str] = []
    if not consents:
        problems.append("no_valid_consent_for_this_recipient_and_purpose")
    elif not groups:
        problems.append("consent_covers_no_field_needed_for_this_purpose")
    return ConsentCheck(
        purpose=purpose,
        consent_ids=[c.id for c in consents],
        consented_groups=consented,
        groups=groups,
        excluded=excluded,
        problems=problems,
    )


def fields_in(groups: Iterable[str]) -> tuple[list[str], list[str]]:
    """(victim field names, case field names) of these groups."""
    victim: list[str] = []
    case: list[str] = []
    for group in groups:
        for name in FIELD_GROUPS.get(group, ()):
            table = FIELD_BY_NAME[name].table
            if table == "victims":
                victim.append(name)
            elif table == "cases":
                case.append(name)
    return sorted(victim), sorted(case)


def fields_with_values(victim: Victim | None, case: Case, groups: Iterable[str]) -> list[str]:
    """Names of the fields in these groups that hold a value, without decrypting any."""
    victim_names, case_names = fields_in(groups)
    out = [n for n in case_names if getattr(case, n) is not None]
    if victim is not None and victim.erased_at is None:
        out += [n for n in victim_names if getattr(victim, n) is not None]
    return sorted(out)


def extract(codec: Codec, victim: Victim, case: Case, groups: Iterable[str]) -> dict[str, Any]:
    """Decrypt exactly the fields of these groups, for the package only."""
    victim_names, case_names = fields_in(groups)
    return {
        "victim": {
            n: codec.open("victims", n, victim.id, getattr(victim, n))
            for n in victim_names
            if getattr(victim, n) is not None
        },
        "case": {
            n: codec.open("cases", n, case.id, getattr(case, n))
            for n in case_names
            if getattr(case, n) is not None
        },
    }


def check_incoming_fields(data: dict[str, Any], groups: Iterable[str]) -> list[str]:
    """Field names in `data` that fall outside the declared groups (must be empty)."""
    victim_names, case_names = fields_in(groups)
    outside = [n for n in data.get("victim", {}) if n not in victim_names]
    outside += [n for n in data.get("case", {}) if n not in case_names]
    return sorted(outside)
