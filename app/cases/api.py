"""JSON API for cases and victims (/api/v1)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic import Field

from app.auth.dependencies import CurrentActor
from app.cases import service
from app.cases.models import Case
from app.cases.schemas import (
    CasePage,
    CasePatch,
    CaseSummary,
    CaseView,
    ConsentIn,
    DuplicateMatch,
    ErasureIn,
    NoteIn,
    ReferralIn,
    RegistrationIn,
    VictimPatch,
)
from app.common.schemas import LongText, Name, StrictInput
from app.context import Ctx
from app.db.session import DbSession
from app.errors import DomainError

router = APIRouter(prefix="/api/v1", tags=["cases"])

IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description='The case version you loaded, e.g. "3"', max_length=20),
]


class PreconditionRequired(DomainError):
    status_code = 428
    code = "precondition_required"


def expected_version(if_match: str | None) -> int:
    if if_match is None:
        raise PreconditionRequired(
            'send If-Match with the case version you loaded, e.g. If-Match: "3"'
        )
    raw = if_match.strip().removeprefix("W/").strip('"')
    if not raw.isdigit() or len(raw) > 9:
        raise PreconditionRequired('If-Match must be the case version number, e.g. "3"')
    return int(raw)


def case_view(
    case: Case, victim: dict[str, Any], details: dict[str, Any], *, show_victim_id: bool
) -> CaseView:
    return CaseView(
        id=case.id,
        reference=case.reference,
        stage=case.stage,
        version=case.version,
        owning_agency_id=case.owning_agency_id,
        country_profile=case.country_profile,
        classification=case.classification,
        age_band=case.age_band,
        sex=case.sex,
        nationality=case.nationality,
        exploitation_forms=list(case.exploitation_forms),
        detecting_org_type=case.detecting_org_type,
        detected_on=case.detected_on,
        stage_entered_at=case.stage_entered_at,
        residence_permit_status=case.residence_permit_status,
        proceedings_status=case.proceedings_status,
        victim_id=case.victim_id if show_victim_id else None,
        victim=victim,
        details=details,
    )


def _etag(response: Response, case: Case) -> None:
    response.headers["ETag"] = f'"{case.version}"'


@router.post("/cases", status_code=status.HTTP_201_CREATED, response_model=CaseView)
def register_case(
    data: RegistrationIn, actor: CurrentActor, session: DbSession, ctx: Ctx, response: Response
) -> CaseView:
    case = service.register(session, ctx, actor, data)
    created, victim, details = service.read_case(
        session, ctx, actor, case.id, purpose="registration"
    )
    _etag(response, created)
    response.headers["Location"] = f"/api/v1/cases/{case.id}"
    return case_view(created, victim, details, show_victim_id=True)


@router.get("/cases", response_model=CasePage)
def list_cases(
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    stage: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z_]+$")] = None,
    reference: Annotated[str | None, Query(max_length=20, pattern=r"^[A-Za-z0-9\-]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 25,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> CasePage:
    cases, total = service.list_cases(
        session, ctx, actor, stage=stage, reference=reference, limit=limit, offset=offset
    )
    return CasePage(
        items=[CaseSummary.model_validate(c, from_attributes=True) for c in cases],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/cases/{case_id}", response_model=CaseView)
def get_case(
    case_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx, response: Response
) -> CaseView:
    case, victim, details = service.read_case(session, ctx, actor, case_id, purpose="api_read")
    _etag(response, case)
    response.headers["Cache-Control"] = "no-store"
    return case_view(case, victim, details, show_victim_id=bool(victim))


@router.patch("/cases/{case_id}", response_model=CaseView)
def patch_case(
    case_id: uuid.UUID,
    data: CasePatch,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> CaseView:
    service.update_case(session, ctx, actor, case_id, data, expected_version(if_match))
    case, victim, details = service.read_case(session, ctx, actor, case_id, purpose="after_update")
    _etag(response, case)
    return case_view(case, victim, details, show_victim_id=bool(victim))


@router.patch("/cases/{case_id}/victim", response_model=CaseView)
def patch_victim(
    case_id: uuid.UUID,
    data: VictimPatch,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> CaseView:
    service.update_victim(session, ctx, actor, case_id, data, expected_version(if_match))
    case, victim, details = service.read_case(session, ctx, actor, case_id, purpose="after_update")
    _etag(response, case)
    return case_view(case, victim, details, show_victim_id=bool(victim))


@router.get("/cases/{case_id}/duplicates", response_model=list[DuplicateMatch])
def get_duplicates(
    case_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> list[DuplicateMatch]:
    return service.possible_duplicates(session, ctx, actor, case_id)


@router.post("/cases/{case_id}/participants", status_code=status.HTTP_201_CREATED)
def add_participant(
    case_id: uuid.UUID, data: ReferralIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> dict[str, str]:
    share = service.refer(session, ctx, actor, case_id, data)
    return {
        "id": str(share.id),
        "agency_id": str(share.agency_id),
        "access_role": share.access_role,
    }


@router.delete(
    "/cases/{case_id}/participants/{participant_id}", status_code=status.HTTP_204_NO_CONTENT
)
def revoke_participant(
    case_id: uuid.UUID, participant_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    service.revoke_share(session, ctx, actor, case_id, participant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/cases/{case_id}/consents", status_code=status.HTTP_201_CREATED)
def add_consent(
    case_id: uuid.UUID, data: ConsentIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> dict[str, str]:
    consent = service.add_consent(session, ctx, actor, case_id, data)
    return {"id": str(consent.id), "purpose": consent.purpose}


@router.post("/cases/{case_id}/consents/{consent_id}/withdrawal", status_code=status.HTTP_200_OK)
def withdraw_consent(
    case_id: uuid.UUID, consent_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> dict[str, str]:
    consent = service.withdraw_consent(session, ctx, actor, case_id, consent_id)
    return {
        "id": str(consent.id),
        "withdrawn_at": consent.withdrawn_at.isoformat() if consent.withdrawn_at else "",
    }


@router.post("/cases/{case_id}/notes", status_code=status.HTTP_201_CREATED)
def add_note(
    case_id: uuid.UUID, data: NoteIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> dict[str, str]:
    note = service.add_note(session, ctx, actor, case_id, data)
    return {"id": str(note.id), "kind": note.kind}


@router.post("/victims/{victim_id}/erasure", status_code=status.HTTP_200_OK)
def erase_victim(
    victim_id: uuid.UUID, data: ErasureIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> dict[str, str]:
    service.erase_victim(
        session, ctx, actor, victim_id, legal_basis=data.legal_basis, reason_code=data.reason_code
    )
    return {"status": "erased"}


class BreakGlassIn(StrictInput):
    reason_code: Name = Field(pattern=r"^[a-z_]+$")
    justification: LongText
    password: str = Field(min_length=1, max_length=256)
    totp_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")


@router.post("/cases/{case_id}/break-glass", status_code=status.HTTP_201_CREATED)
def break_glass(
    case_id: uuid.UUID,
    data: BreakGlassIn,
    request: Request,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> dict[str, str]:
    """Emergency access to a case outside your scope: one case, 60 minutes, reviewed."""
    from app.auth.break_glass import request_access

    grant = request_access(
        session,
        ctx,
        actor,
        request.state.user,
        case_id,
        reason_code=data.reason_code,
        justification=data.justification,
        password=data.password,
        totp_code=data.totp_code,
    )
    return {"grant_id": str(grant.id), "expires_at": grant.expires_at.isoformat()}
