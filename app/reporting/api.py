"""Coordinator reporting and audit API (JSON, ``/api/v1/reporting``).

Statistics need ``stats.read`` (coordinators: national scope, no sealed field ever); the
audit views need ``audit.read``; reviewing a break-glass grant needs ``break_glass.review``.
Filters are query parameters, so every view is a shareable URL that keeps its state. No
personal value is read, returned or logged here: figures, codes, dates and pseudonymous
case references only.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import and_, or_, select

from app.agencies.models import Agency
from app.audit import service as audit
from app.audit.models import AuditEvent
from app.audit.service import case_timeline, verify_chains
from app.auth import break_glass
from app.auth.dependencies import CurrentActor
from app.auth.models import User
from app.cases.models import Case
from app.cases.service import load_case, require
from app.cases.workflow_api import TimelineEntry
from app.common.schemas import StrictInput
from app.context import AppContext, Ctx
from app.db.session import DbSession
from app.reporting import exports
from app.reporting.indicators import (
    Filters,
    decision_trend,
    drill_down,
    funnel,
    indicators,
    make_filters,
    overdue_by_agency,
)

router = APIRouter(prefix="/api/v1/reporting", tags=["reporting"])

# Audit actions that record who looked at, opened or shared a case (the access log).
ACCESS_ACTIONS = (
    "case_viewed",
    "fields_read",
    "fields_revealed",
    "access_denied",
    "break_glass",
    "break_glass_reviewed",
    "case_shared",
    "case_share_revoked",
    "duplicates_checked",
)


def query_filters(
    ctx: Ctx,
    period: Annotated[str | None, Query(description="2026, 2026-Q3 or 2026-07")] = None,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    basis: Annotated[Literal["detection", "event"], Query()] = "detection",
    country_profile: str | None = None,
    agency_id: uuid.UUID | None = None,
    region: Annotated[str | None, Query(max_length=100)] = None,
    nationality: Annotated[str | None, Query(max_length=2)] = None,
    sex: str | None = None,
    age_band: str | None = None,
    exploitation_form: str | None = None,
    detecting_org_type: str | None = None,
) -> Filters:
    return make_filters(
        ctx,
        period=period,
        date_from=date_from,
        date_to=date_to,
        basis=basis,
        country_profile=country_profile,
        agency_id=agency_id,
        region=region,
        nationality=nationality,
        sex=sex,
        age_band=age_band,
        exploitation_form=exploitation_form,
        detecting_org_type=detecting_org_type,
    )


QueryFilters = Annotated[Filters, Depends(query_filters)]


def _stats(ctx: AppContext, actor: CurrentActor) -> None:
    require(ctx, actor, "stats.read")


# -- statistics ---------------------------------------------------------------------------------
@router.get("/indicators")
def get_indicators(
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    filters: QueryFilters,
    group_by: str | None = None,
) -> dict[str, Any]:
    """Referral-timeline indicators (domain standards 8(b)), optionally per group."""
    _stats(ctx, actor)
    return indicators(session, ctx, filters, group_by=group_by or None)


@router.get("/funnel")
def get_funnel(
    actor: CurrentActor, session: DbSession, ctx: Ctx, filters: QueryFilters
) -> dict[str, Any]:
    _stats(ctx, actor)
    return funnel(session, ctx, filters)


@router.get("/trend")
def get_trend(
    actor: CurrentActor, session: DbSession, ctx: Ctx, filters: QueryFilters
) -> dict[str, Any]:
    """Reasonable grounds -> identification decision: distribution and quarterly medians."""
    _stats(ctx, actor)
    return decision_trend(session, ctx, filters)


@router.get("/overdue")
def get_overdue(
    actor: CurrentActor, session: DbSession, ctx: Ctx, filters: QueryFilters
) -> dict[str, Any]:
    """Open cases' overdue and soon-due deadlines, by agency and deadline kind."""
    _stats(ctx, actor)
    return overdue_by_agency(session, ctx, filters)


@router.get("/cases")
def get_cases(
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    filters: QueryFilters,
    indicator: Annotated[str | None, Query(max_length=60)] = None,
    overdue: Annotated[str | None, Query(max_length=60)] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Drill-down: pseudonymised references behind a figure (no personal field)."""
    _stats(ctx, actor)
    return drill_down(
        session,
        ctx,
        filters,
        indicator=indicator or None,
        overdue_kind=overdue or None,
        limit=limit,
        offset=offset,
    )


@router.get("/cases/{case_id}/timeline", response_model=list[TimelineEntry])
def get_case_timeline(
    case_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> list[TimelineEntry]:
    """A case's audit timeline for the coordinator (codes, roles and dates; nothing sealed)."""
    case = load_case(session, ctx, actor, case_id)  # national scope; a missing id is a 404
    _stats(ctx, actor)
    entries = [
        TimelineEntry.model_validate(e, from_attributes=True)
        for e in case_timeline(session, case.id)
    ]
    audit.record(
        session,
        actor,
        "case_viewed",
        case_id=case.id,
        entity_type="case",
        entity_id=case.id,
        details={"purpose": "coordinator_audit"},
    )
    return entries


@router.get(
    "/exports/{kind}",
    response_class=Response,
    responses={
        200: {
            "description": "The export file (attachment), CSV or JSON as asked.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
def get_export(
    kind: Literal["nrm_quarterly", "eurostat", "ctdc_records"],
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    filters: QueryFilters,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
    k: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """A suppressed aggregate table set or a k-anonymous record file (audited)."""
    _stats(ctx, actor)
    content, media, filename = exports.build_export(session, ctx, actor, kind, format, filters, k=k)
    return Response(
        content,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


# -- audit ----------------------------------------------------------------------------------------
class VerifyIn(StrictInput):
    case_id: uuid.UUID | None = None


@router.post("/audit/verify")
def post_verify(
    data: VerifyIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> dict[str, Any]:
    """Recompute the hash chains (all, or one case's) and report the first broken link."""
    require(ctx, actor, "audit.read")
    keys = [f"case:{data.case_id}"] if data.case_id else None
    report = verify_chains(session, keys)
    audit.record(
        session,
        actor,
        "audit_verified",
        details={
            "scope": "case" if data.case_id else "all",
            "chains": report.chains,
            "events": report.events,
            "broken": len(report.broken),
        },
    )
    return {
        "ok": report.ok,
        "chains": report.chains,
        "events": report.events,
        "broken": [
            {
                "chain_key": link.chain_key,
                "seq": link.seq,
                "event_id": str(link.event_id) if link.event_id else None,
                "problem": link.problem,
            }
            for link in report.broken
        ],
    }


def access_log(session: DbSession, case_id: uuid.UUID) -> list[AuditEvent]:
    """Access events of one case: its chain's reads and shares, and denials naming it."""
    stmt = (
        select(AuditEvent)
        .where(
            AuditEvent.action.in_(ACCESS_ACTIONS),
            or_(
                AuditEvent.chain_key == f"case:{case_id}",
                and_(
                    AuditEvent.action == "access_denied",
                    AuditEvent.entity_type == "case",
                    AuditEvent.entity_id == case_id,
                ),
            ),
        )
        .order_by(AuditEvent.occurred_at, AuditEvent.seq)
    )
    return list(session.scalars(stmt))


@router.get("/audit/cases/{case_id}/access-log")
def get_access_log(
    case_id: uuid.UUID, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> dict[str, Any]:
    require(ctx, actor, "audit.read")
    events = access_log(session, case_id)
    return {
        "case_id": str(case_id),
        "events": [
            {
                "occurred_at": e.occurred_at.isoformat(),
                "action": e.action,
                "actor_user_id": str(e.actor_user_id) if e.actor_user_id else None,
                "actor_role": e.actor_role,
                "actor_agency_id": str(e.actor_agency_id) if e.actor_agency_id else None,
                "fields": list(e.fields or []),
                "details": e.details or {},
            }
            for e in events
        ],
    }


def grant_rows(session: DbSession, *, pending_only: bool) -> list[dict[str, Any]]:
    grants = (
        break_glass.pending_reviews(session)
        if pending_only
        else list(
            session.scalars(
                select(break_glass.BreakGlassGrant).order_by(
                    break_glass.BreakGlassGrant.granted_at.desc()
                )
            )
        )
    )
    users = {
        u.id: u
        for u in session.scalars(
            select(User).where(
                User.id.in_(
                    {g.user_id for g in grants} | {g.reviewed_by for g in grants if g.reviewed_by}
                )
            )
        )
    }
    agencies = {
        a.id: a.name
        for a in session.scalars(
            select(Agency).where(Agency.id.in_({u.agency_id for u in users.values()}))
        )
    }
    references: dict[uuid.UUID, str] = {
        case_id: reference
        for case_id, reference in session.execute(
            select(Case.id, Case.reference).where(Case.id.in_({g.case_id for g in grants}))
        )
    }
    rows = []
    for g in grants:
        requester = users.get(g.user_id)
        reviewer = users.get(g.reviewed_by) if g.reviewed_by else None
        rows.append(
            {
                "grant_id": str(g.id),
                "case_id": str(g.case_id),
                "case_reference": references.get(g.case_id),
                "reason_code": g.reason_code,
                "granted_at": g.granted_at.isoformat(),
                "expires_at": g.expires_at.isoformat(),
                "requested_by": requester.username if requester else None,
                "requester_role": requester.role if requester else None,
                "requester_agency": agencies.get(requester.agency_id) if requester else None,
                "reviewed_at": g.reviewed_at.isoformat() if g.reviewed_at else None,
                "reviewed_by": reviewer.username if reviewer else None,
                "review_outcome": g.review_outcome,
            }
        )
    return rows


@router.get("/audit/break-glass")
def get_break_glass(
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    status: Literal["pending", "all"] = "pending",
) -> dict[str, Any]:
    """The break-glass review queue (the sealed justification is never shown here)."""
    require(ctx, actor, "break_glass.review")
    return {"status": status, "grants": grant_rows(session, pending_only=status == "pending")}


class ReviewIn(StrictInput):
    outcome: Literal["justified", "unjustified"]


@router.post("/audit/break-glass/{grant_id}/review")
def post_review(
    grant_id: uuid.UUID, data: ReviewIn, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> dict[str, Any]:
    grant = break_glass.review(session, ctx, actor, grant_id, data.outcome)
    return {
        "grant_id": str(grant.id),
        "review_outcome": grant.review_outcome,
        "reviewed_at": grant.reviewed_at.isoformat() if grant.reviewed_at else None,
    }
