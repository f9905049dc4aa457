"""Case and victim use cases: register, read, update, refer, consent, notes, duplicates, erase.

Services never commit: the request's unit of work does. Each change writes its audit event
in the same transaction. Workflow transitions live in app/cases/transitions.py.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.actor import Actor
from app.cases import repository as repo
from app.cases.models import Case, CaseNote, CaseParticipant, Consent, OutboxMessage
from app.cases.schemas import (
    CaseFields,
    ConsentIn,
    DuplicateMatch,
    NoteIn,
    ReferralIn,
    RegistrationIn,
    VictimFields,
)
from app.context import AppContext
from app.crypto.models import BlindIndexEntry
from app.crypto.service import Codec
from app.db import rls
from app.db.base import utcnow
from app.errors import Conflict, Forbidden, InvalidInput, NotFound, StaleVersion
from app.operations.erasure_journal import enqueue_erasure
from app.victims.fields import CASE_FIELDS, FIELD_GROUPS, NOTE_FIELDS, VICTIM_FIELDS
from app.victims.models import Victim
from app.vocab import age_band

_REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_VICTIM_FIELD_NAMES = tuple(f.name for f in VICTIM_FIELDS)
_CASE_FIELD_NAMES = tuple(f.name for f in CASE_FIELDS)
_STATISTICS_INPUTS = ("date_of_birth", "estimated_age", "age_uncertain", "sex", "nationalities")
_BLIND_INDEX_INPUTS = ("given_name", "family_name", "date_of_birth", "documents")


# -- helpers ---------------------------------------------------------------------------------
def require(ctx: AppContext, actor: Actor, permission: str) -> None:
    if not ctx.policy.can(actor.role, permission):
        raise Forbidden(f"your role may not {permission.replace('.', ' ')}")


def load_case(
    session: Session, ctx: AppContext, actor: Actor, case_id: uuid.UUID, *, lock: bool = False
) -> Case:
    """Scoped load. Out-of-scope and missing ids look the same, and both are audited."""
    case = repo.get_readable_case(session, actor, ctx.policy, case_id, lock=lock)
    if case is None:
        audit.record(
            session,
            actor,
            "access_denied",
            entity_type="case",
            entity_id=case_id,
            details={"reason": "out_of_scope_or_missing"},
        )
        raise NotFound(audited=True)
    return case


def new_reference() -> str:
    """A random, pseudonymous reference (40 bits): e.g. PSG-7K3Q-9XF2."""
    body = "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(8))
    return f"PSG-{body[:4]}-{body[4:]}"


def _insert_with_unique_reference(session: Session, case: Case) -> None:
    """The unique constraint decides (row-level security hides other agencies' references)."""
    for _ in range(5):
        case.reference = new_reference()
        try:
            with session.begin_nested():
                session.add(case)
                session.flush()  # only the case is pending here
            return
        except IntegrityError:
            if case in session:
                session.expunge(case)
    raise Conflict("could not allocate a case reference; try again")


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _seal(codec: Codec, row: Any, table: str, values: dict[str, Any]) -> list[str]:
    """Seal the given values into the row; returns the names of non-empty fields written."""
    written = []
    for name, value in values.items():
        plain = _jsonable(value)
        setattr(row, name, codec.seal(table, name, row.id, plain))
        if plain not in (None, [], False):
            written.append(name)
    return written


def _open(codec: Codec, row: Any, table: str, names: Iterable[str]) -> dict[str, Any]:
    return {name: codec.open(table, name, row.id, getattr(row, name)) for name in names}


def _statistics(case: Case, victim: VictimFields, today: date) -> None:
    """Refresh the case's coarse, non-identifying statistical projection."""
    dob = victim.date_of_birth
    case.age_band = str(age_band(dob, victim.estimated_age, victim.age_uncertain, today))
    case.sex = str(victim.sex)
    case.nationality = victim.nationalities[0] if victim.nationalities else None


def _blind_index_rows(
    ctx: AppContext, victim_id: uuid.UUID, agency_id: uuid.UUID, v: VictimFields
) -> list[BlindIndexEntry]:
    digests = ctx.keys.indexer.identity_digests(
        given_name=v.given_name,
        family_name=v.family_name,
        date_of_birth=v.date_of_birth,
        documents=[(d.issuing_country or "", d.number) for d in v.documents if d.number],
    )
    return [
        BlindIndexEntry(victim_id=victim_id, agency_id=agency_id, index_name=name, digest=digest)
        for name, values in digests.items()
        for digest in values
    ]


# -- registration ----------------------------------------------------------------------------
def register(session: Session, ctx: AppContext, actor: Actor, data: RegistrationIn) -> Case:
    require(ctx, actor, "case.create")
    if actor.agency_id is None:
        raise Forbidden("only members of an agency can register victims")
    profile_code = data.detection.country_profile or ctx.settings.default_country_profile
    if profile_code not in ctx.profiles:
        raise InvalidInput(f"unknown country profile {profile_code!r}")
    agency = repo.agency(session, actor.agency_id)
    now = utcnow()

    # The id exists before the insert, so every field is sealed for its row and the victim
    # is inserted once, complete (the unit of work orders it before its data key).
    victim = Victim(registered_by_agency_id=actor.agency_id)
    codec, data_key = ctx.keys.new_data_key(session, victim.id)
    victim_values = {name: getattr(data.victim, name) for name in _VICTIM_FIELD_NAMES}
    victim_written = _seal(codec, victim, "victims", victim_values)
    session.add(victim)
    session.flush()
    session.add(data_key)
    session.flush()

    case = Case(
        reference="",
        victim_id=victim.id,
        owning_agency_id=actor.agency_id,
        country_profile=profile_code,
        stage="detected",
        stage_entered_at=now,
        exploitation_forms=[str(f) for f in data.case.exploitation_forms],
        detecting_org_type=str(data.detection.detecting_org_type),
        detected_on=data.detection.detected_on,
        region=agency.region if agency else None,
        indicator_count=len(set(data.case.indicators)),
        last_contact_at=now,
    )
    _statistics(case, data.victim, now.date())
    case_values = {name: getattr(data.case, name) for name in _CASE_FIELD_NAMES}
    case_written = _seal(codec, case, "cases", case_values)
    _insert_with_unique_reference(session, case)
    session.add_all(_blind_index_rows(ctx, victim.id, actor.agency_id, data.victim))
    session.flush()

    audit.record(
        session,
        actor,
        "case_registered",
        case_id=case.id,
        victim_id=victim.id,
        entity_type="case",
        entity_id=case.id,
        fields=victim_written + case_written,
        details={"stage": case.stage, "country_profile": profile_code, "age_band": case.age_band},
    )
    for consent_in in data.consents:
        _add_consent(session, ctx, actor, case, consent_in)
    return case


# -- reading ---------------------------------------------------------------------------------
def read_case(
    session: Session, ctx: AppContext, actor: Actor, case_id: uuid.UUID, *, purpose: str = "view"
) -> tuple[Case, dict[str, Any], dict[str, Any]]:
    """Load a case and decrypt exactly the fields the actor's role sees at this stage."""
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id)
    require(ctx, actor, "case.read")
    victim_fields = ctx.policy.visible_fields(actor.role, case.stage, "victims")
    case_fields = ctx.policy.visible_fields(actor.role, case.stage, "cases")
    victim_view: dict[str, Any] = {}
    case_view: dict[str, Any] = {}
    if victim_fields or case_fields:
        victim = repo.get_victim(session, case.victim_id)
        if victim is None or victim.erased_at is not None:
            return case, {}, {}
        codec = ctx.keys.codec_for(session, case.victim_id)
        victim_view = _open(codec, victim, "victims", sorted(victim_fields))
        case_view = _open(codec, case, "cases", sorted(case_fields))
    opened = [k for k, v in {**victim_view, **case_view}.items() if v is not None]
    audit.record(
        session,
        actor,
        "case_viewed" if not opened else "fields_read",
        case_id=case.id,
        victim_id=case.victim_id,
        entity_type="case",
        entity_id=case.id,
        fields=opened,
        details={"purpose": purpose},
    )
    return case, victim_view, case_view


def list_cases(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    *,
    stage: str | None,
    reference: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Case], int]:
    require(ctx, actor, "case.read")
    if limit > ctx.settings.max_page_size:
        raise InvalidInput(f"limit must be at most {ctx.settings.max_page_size}")
    return repo.list_readable_cases(
        session, actor, ctx.policy, stage=stage, reference=reference, limit=limit, offset=offset
    )


# -- updates ---------------------------------------------------------------------------------
def check_version(case: Case, expected_version: int) -> None:
    if case.version != expected_version:
        raise StaleVersion(
            f"this case changed since you loaded it (you saw version {expected_version}, "
            f"it is now version {case.version}); reload and try again"
        )


def _writable(ctx: AppContext, actor: Actor, case: Case, table: str, names: Iterable[str]) -> None:
    visible = ctx.policy.visible_fields(actor.role, case.stage, table)
    hidden = sorted(set(names) - visible)
    if hidden:
        raise Forbidden(f"your role may not change these fields at this stage: {', '.join(hidden)}")


def update_victim(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    patch: VictimFields,
    expected_version: int,
) -> Case:
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id, lock=True)
    require(ctx, actor, "victim.update")
    check_version(case, expected_version)
    changed = sorted(patch.model_fields_set)
    _writable(ctx, actor, case, "victims", changed)
    victim = repo.get_victim(session, case.victim_id)
    if victim is None or victim.erased_at is not None:
        raise Conflict("this victim's record was erased")
    codec = ctx.keys.codec_for(session, victim.id)
    _seal(codec, victim, "victims", {name: getattr(patch, name) for name in changed})
    # Recompute derived data only when its inputs changed, opening only those inputs.
    now = utcnow()
    derived = set(_STATISTICS_INPUTS) | set(_BLIND_INDEX_INPUTS)
    if derived & set(changed):
        merged = VictimFields.model_validate(_open(codec, victim, "victims", sorted(derived)))
        if set(_STATISTICS_INPUTS) & set(changed):
            for each in repo.cases_of_victim(session, victim.id):
                _statistics(each, merged, now.date())
        if set(_BLIND_INDEX_INPUTS) & set(changed):
            repo.replace_blind_index(
                session,
                _blind_index_rows(ctx, victim.id, victim.registered_by_agency_id, merged),
                victim.id,
            )
    victim.updated_at = now
    case.version += 1
    audit.record(
        session,
        actor,
        "victim_updated",
        case_id=case.id,
        victim_id=victim.id,
        entity_type="victim",
        entity_id=victim.id,
        fields=changed,
        details={"version": case.version},
    )
    return case


def update_case(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    patch: CaseFields,
    expected_version: int,
) -> Case:
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id, lock=True)
    require(ctx, actor, "case.update")
    check_version(case, expected_version)
    changed = sorted(patch.model_fields_set)
    sealed = [n for n in changed if n in _CASE_FIELD_NAMES]
    _writable(ctx, actor, case, "cases", sealed)
    codec = ctx.keys.codec_for(session, case.victim_id)
    _seal(codec, case, "cases", {name: getattr(patch, name) for name in sealed})
    if "exploitation_forms" in changed:
        case.exploitation_forms = [str(f) for f in patch.exploitation_forms]
    if "indicators" in changed:
        case.indicator_count = len(set(patch.indicators))
    case.version += 1
    audit.record(
        session,
        actor,
        "case_updated",
        case_id=case.id,
        victim_id=case.victim_id,
        entity_type="case",
        entity_id=case.id,
        fields=changed,
        details={"version": case.version},
    )
    return case


# -- duplicates ------------------------------------------------------------------------------
def possible_duplicates(
    session: Session, ctx: AppContext, actor: Actor, case_id: uuid.UUID
) -> list[DuplicateMatch]:
    """Other agencies holding a registration with the same blind-index digest."""
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id)
    require(ctx, actor, "duplicates.check")
    pairs = [(e.index_name, e.digest) for e in repo.blind_index_entries(session, case.victim_id)]
    grouped: dict[uuid.UUID, DuplicateMatch] = {}
    for agency_id, agency_name, index_name in repo.matching_agencies(
        session, case.victim_id, pairs
    ):
        match = grouped.setdefault(
            agency_id, DuplicateMatch(agency_id=agency_id, agency_name=agency_name, matched_on=[])
        )
        if index_name not in match.matched_on:
            match.matched_on.append(index_name)
    audit.record(
        session,
        actor,
        "duplicates_checked",
        case_id=case.id,
        victim_id=case.victim_id,
        details={"possible_matches": len(grouped)},
    )
    return sorted(grouped.values(), key=lambda m: m.agency_name)


# -- referral, consent, notes ------------------------------------------------------------------
def refer(
    session: Session, ctx: AppContext, actor: Actor, case_id: uuid.UUID, data: ReferralIn
) -> CaseParticipant:
    """Share the case with another agency through a named role (revocable, may expire)."""
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id, lock=True)
    require(ctx, actor, "case.refer")
    target = repo.agency(session, data.agency_id)
    if target is None or not target.is_active:
        raise InvalidInput("the agency to refer to does not exist or is inactive")
    if data.expires_at is not None and data.expires_at <= utcnow():
        raise InvalidInput("expires_at must be in the future")
    share = CaseParticipant(
        case_id=case.id,
        agency_id=target.id,
        access_role=data.access_role,
        purpose=data.purpose,
        granted_by=actor.user_id,
        expires_at=data.expires_at,
    )
    session.add(share)
    session.flush()
    audit.record(
        session,
        actor,
        "case_shared",
        case_id=case.id,
        victim_id=case.victim_id,
        entity_type="case_participant",
        entity_id=share.id,
        details={"agency_id": str(target.id), "access_role": data.access_role},
    )
    return share


def revoke_share(
    session: Session, ctx: AppContext, actor: Actor, case_id: uuid.UUID, participant_id: uuid.UUID
) -> None:
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id, lock=True)
    require(ctx, actor, "case.refer")
    if case.owning_agency_id != actor.agency_id:
        raise Forbidden("only the owning agency can revoke a referral")
    share = repo.participant(session, case.id, participant_id)
    if share is None or share.revoked_at is not None:
        raise NotFound("no active referral with that id on this case")
    share.revoked_at = utcnow()
    audit.record(
        session,
        actor,
        "case_share_revoked",
        case_id=case.id,
        entity_type="case_participant",
        entity_id=share.id,
        details={"agency_id": str(share.agency_id)},
    )


def _add_consent(
    session: Session, ctx: AppContext, actor: Actor, case: Case, data: ConsentIn
) -> Consent:
    unknown = sorted(set(data.scope) - set(FIELD_GROUPS))
    if unknown:
        raise InvalidInput(f"unknown field groups in consent scope: {', '.join(unknown)}")
    if (
        data.recipient_agency_id is not None
        and repo.agency(session, data.recipient_agency_id) is None
    ):
        raise InvalidInput("the consent recipient agency does not exist")
    consent = Consent(
        case_id=case.id,
        purpose=str(data.purpose),
        recipient_agency_id=data.recipient_agency_id,
        recipient_description=data.recipient_description,
        scope=list(dict.fromkeys(data.scope)),
        given_on=data.given_on,
        expires_on=data.expires_on,
        recorded_by=actor.user_id,
    )
    session.add(consent)
    session.flush()
    audit.record(
        session,
        actor,
        "consent_recorded",
        case_id=case.id,
        entity_type="consent",
        entity_id=consent.id,
        details={"purpose": consent.purpose, "scope": consent.scope},
    )
    return consent


def add_consent(
    session: Session, ctx: AppContext, actor: Actor, case_id: uuid.UUID, data: ConsentIn
) -> Consent:
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id, lock=True)
    require(ctx, actor, "consent.manage")
    return _add_consent(session, ctx, actor, case, data)


def withdraw_consent(
    session: Session, ctx: AppContext, actor: Actor, case_id: uuid.UUID, consent_id: uuid.UUID
) -> Consent:
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id, lock=True)
    require(ctx, actor, "consent.manage")
    consent = repo.consent(session, case.id, consent_id)
    if consent is None:
        raise NotFound("no consent with that id on this case")
    if consent.withdrawn_at is not None:
        raise Conflict("this consent was already withdrawn")
    consent.withdrawn_at = utcnow()
    # Partners that received data under this consent are told (transnational issue).
    session.add(
        OutboxMessage(
            topic="consent.withdrawn",
            payload={
                "case_id": str(case.id),
                "consent_id": str(consent.id),
                "purpose": consent.purpose,
            },
        )
    )
    audit.record(
        session,
        actor,
        "consent_withdrawn",
        case_id=case.id,
        entity_type="consent",
        entity_id=consent.id,
        details={"purpose": consent.purpose},
    )
    return consent


def add_note(
    session: Session, ctx: AppContext, actor: Actor, case_id: uuid.UUID, data: NoteIn
) -> CaseNote:
    permission = "assistance.record" if data.kind == "assistance" else "note.create"
    # Scope before permission: another agency's case is a 404 for everyone.
    case = load_case(session, ctx, actor, case_id)
    require(ctx, actor, permission)
    codec = ctx.keys.codec_for(session, case.victim_id)
    note = CaseNote(case_id=case.id, author_id=actor.user_id, kind=data.kind)
    note.body = codec.seal("case_notes", "body", note.id, data.body)
    session.add(note)
    if data.kind in ("assistance", "contact"):
        case.last_contact_at = utcnow()
        if case.reasonable_grounds_at is not None and case.first_support_contact_at is None:
            case.first_support_contact_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "assistance_recorded" if data.kind == "assistance" else "note_added",
        case_id=case.id,
        victim_id=case.victim_id,
        entity_type="case_note",
        entity_id=note.id,
        fields=[f.name for f in NOTE_FIELDS],
        details={"kind": data.kind},
    )
    return note


# -- erasure ---------------------------------------------------------------------------------
def erase_victim(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    victim_id: uuid.UUID,
    *,
    legal_basis: str,
    reason_code: str,
) -> None:
    """Crypto-shred a victim: destroy its data key and blind indexes. The audit trail stays."""
    require(ctx, actor, "victim.erase")
    # Erasure is the one path where an administrator, who sees no case, touches a victim.
    rls.apply_system(session)
    victim = repo.get_victim(session, victim_id)
    if victim is None:
        audit.record(session, actor, "access_denied", entity_type="victim", entity_id=victim_id)
        raise NotFound(audited=True)
    if victim.erased_at is not None:
        raise Conflict("this victim's record was already erased")
    cases = repo.cases_of_victim(session, victim.id)
    held = [
        c.reference
        for c in cases
        if c.proceedings_status not in ("none", "outcome", "discontinued")
    ]
    if held:
        raise Conflict("a legal hold applies while criminal proceedings run; erasure refused")
    ctx.keys.shred(session, victim.id)
    victim.erased_at = utcnow()
    # The journal line outlives backups, so a restore cannot bring the victim back: it is
    # fsynced just before this transaction commits, and a failure to write it stops the commit.
    enqueue_erasure(
        session,
        victim.id,
        reason_code=reason_code,
        erased_at=victim.erased_at,
        journal=ctx.settings.erasure_journal,
    )
    details = {"reason_code": reason_code, "legal_basis": legal_basis[:200]}
    for case in cases:
        audit.record(
            session, actor, "victim_erased", case_id=case.id, victim_id=victim.id, details=details
        )
    audit.record(
        session,
        actor,
        "victim_erased",
        victim_id=victim.id,
        details={**details, "cases": len(cases)},
    )


# -- masked screens and reveal ---------------------------------------------------------------
REVEAL_PURPOSES = (
    "case_work",
    "identification_decision",
    "safety_planning",
    "referral_preparation",
    "return_preparation",
    "guardian_duty",
    "data_subject_request",
)


def masked_fields(
    session: Session, ctx: AppContext, actor: Actor, case: Case
) -> dict[str, dict[str, bool]]:
    """For a screen: which visible fields hold a value, per table, without decrypting anything."""
    out: dict[str, dict[str, bool]] = {"victims": {}, "cases": {}}
    victim = repo.get_victim(session, case.victim_id)
    erased = victim is None or victim.erased_at is not None
    for table, row in (("victims", victim), ("cases", case)):
        for name in sorted(ctx.policy.visible_fields(actor.role, case.stage, table)):
            out[table][name] = not erased and row is not None and getattr(row, name) is not None
    return out


def reveal(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    names: Iterable[str],
    purpose: str,
) -> dict[str, Any]:
    """Decrypt the named fields for a stated purpose; each reveal is audited with the purpose."""
    case = load_case(session, ctx, actor, case_id)
    require(ctx, actor, "victim.reveal")
    if purpose not in REVEAL_PURPOSES:
        raise InvalidInput(
            f"state why you need to see these fields (one of: {', '.join(REVEAL_PURPOSES)})"
        )
    wanted = set(names)
    victim_visible = ctx.policy.visible_fields(actor.role, case.stage, "victims")
    case_visible = ctx.policy.visible_fields(actor.role, case.stage, "cases")
    hidden = sorted(wanted - victim_visible - case_visible)
    if hidden:
        raise Forbidden(f"your role may not see these fields at this stage: {', '.join(hidden)}")
    victim = repo.get_victim(session, case.victim_id)
    if victim is None or victim.erased_at is not None:
        raise Conflict("this victim's record was erased")
    codec = ctx.keys.codec_for(session, case.victim_id)
    values = {
        **_open(codec, victim, "victims", sorted(wanted & victim_visible)),
        **_open(codec, case, "cases", sorted(wanted & case_visible)),
    }
    audit.record(
        session,
        actor,
        "fields_revealed",
        case_id=case.id,
        victim_id=case.victim_id,
        fields=[k for k, v in values.items() if v is not None],
        details={"purpose": purpose},
    )
    return values


def notes_view(
    session: Session, ctx: AppContext, actor: Actor, case: Case, *, limit: int = 50
) -> list[tuple[CaseNote, Any]]:
    """Notes with bodies, when the role may see notes at this stage (audited as a read)."""
    if "notes" not in ctx.policy.visible_groups(actor.role, case.stage):
        return []
    rows = repo.notes(session, case.id, limit)
    if not rows:
        return []
    codec = ctx.keys.codec_for(session, case.victim_id)
    out = [(n, codec.open("case_notes", "body", n.id, n.body)) for n in rows]
    audit.record(
        session,
        actor,
        "fields_read",
        case_id=case.id,
        victim_id=case.victim_id,
        fields=["body"],
        details={"purpose": "notes", "count": len(out)},
    )
    return out


# -- screens (app/web) -----------------------------------------------------------------------
def view_case(
    session: Session, ctx: AppContext, actor: Actor, case_id: uuid.UUID
) -> tuple[Case, dict[str, dict[str, bool]]]:
    """A case for its screen: scoped load, which visible fields hold a value, one audit event.

    Nothing is decrypted: personal fields stay masked until `reveal` is asked for a purpose.
    """
    case = load_case(session, ctx, actor, case_id)
    require(ctx, actor, "case.read")
    masked = masked_fields(session, ctx, actor, case)
    audit.record(
        session,
        actor,
        "case_viewed",
        case_id=case.id,
        victim_id=case.victim_id,
        entity_type="case",
        entity_id=case.id,
        details={"purpose": "screen"},
    )
    return case, masked


def case_consents(session: Session, case: Case) -> list[Consent]:
    """Consent records of a case (the caller has loaded the case through its scope)."""
    return repo.consents(session, case.id)


def case_shares(session: Session, case: Case) -> list[CaseParticipant]:
    """Active referrals (shares) of a case (the caller has loaded the case through its scope)."""
    return repo.active_participants(session, case.id)


def agency_names(session: Session, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    from sqlalchemy import select

    from app.agencies.models import Agency

    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(Agency.id, Agency.name).where(Agency.id.in_(wanted)))
    return {agency_id: name for agency_id, name in rows}


def active_agencies(session: Session) -> list[Any]:
    """Agencies a case can be referred to, or a consent can name (names and types only)."""
    from sqlalchemy import select

    from app.agencies.models import Agency

    stmt = select(Agency).where(Agency.is_active.is_(True)).order_by(Agency.name)
    return list(session.scalars(stmt))


def guardian_candidates(session: Session) -> list[Any]:
    """Active users with the guardian role, for assigning a child's guardian."""
    from sqlalchemy import select

    from app.auth.models import User

    stmt = (
        select(User)
        .where(User.role == "guardian", User.is_active.is_(True))
        .order_by(User.display_name)
    )
    return list(session.scalars(stmt))


def decision_inbox(
    session: Session,
    ctx: AppContext,
    actor: Actor,
    *,
    stages: Iterable[str],
    limit: int,
    offset: int,
) -> tuple[list[Case], int]:
    """Readable cases waiting in the given stages, most urgent deadline first."""
    from sqlalchemy import func, select

    require(ctx, actor, "case.read")
    if limit > ctx.settings.max_page_size:
        raise InvalidInput(f"limit must be at most {ctx.settings.max_page_size}")
    stmt = repo.readable_cases(actor, ctx.policy).where(Case.stage.in_(list(stages)))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    ordered = stmt.order_by(
        Case.next_due_at.is_(None), Case.next_due_at, Case.stage_entered_at.desc()
    )
    return list(session.scalars(ordered.limit(limit).offset(offset))), total
