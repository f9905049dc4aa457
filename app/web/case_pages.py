"""Case screens: caseload, case page (masked fields, reveal, timeline, actions), case forms.

Personal fields are listed from `masked_fields` (the visibility policy) and decrypted only
by `reveal`, for a stated purpose, one group at a time. A template never sees a sealed field
the policy did not return. URLs carry case ids and references only.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from app.audit.service import case_timeline
from app.auth.actor import Actor
from app.auth.dependencies import CurrentActor
from app.cases import service, transitions
from app.cases.models import Case
from app.cases.schemas import ConsentIn, NoteIn, ReferralIn, VictimFields
from app.cases.workflow import (
    PERMIT_TRANSITIONS,
    PROCEEDINGS_TRANSITIONS,
    TRANSITIONS,
    Event,
    Stage,
)
from app.context import AppContext, Ctx
from app.db.base import utcnow
from app.db.session import DbSession
from app.errors import NotFound
from app.victims.fields import ALL_SEALED_FIELDS, FIELD_BY_NAME, FIELD_GROUPS
from app.vocab import ClosureReason, Role
from app.web import labels
from app.web.deps import Form, attempt, checked, require_permission, text, texts, version_of
from app.web.errors import HtmlRoute, domain_message, field_error, redirect
from app.web.i18n import N_
from app.web.templating import is_htmx, render, translate

router = APIRouter(route_class=HtmlRoute)

PAGE_SIZE = 25
REFERENCE_RE = re.compile(r"^[A-Za-z0-9\-]{1,20}$")
NEGATIVE_EVENTS = frozenset(
    {
        Event.propose_negative_decision,
        Event.negative_reasonable_grounds,
        Event.negative_identification,
        Event.uphold_negative,
    }
)
# Coded purposes of a referral: stored in clear on the share, so never free text.
REFERRAL_PURPOSES: dict[str, str] = {
    "identification": N_("Identification decision"),
    "assistance": N_("Assistance and support"),
    "accommodation": N_("Accommodation"),
    "legal_proceedings": N_("Criminal proceedings"),
    "child_protection": N_("Child protection and guardianship"),
    "return": N_("Return and reintegration"),
}
SAVED: dict[str, str] = {
    "transition": N_("The workflow step was recorded."),
    "referral": N_("The case was shared with the agency."),
    "referral_revoked": N_("The referral was revoked."),
    "note": N_("The note was recorded."),
    "assessment": N_("The assessment was recorded."),
    "guardian": N_("The guardian was assigned."),
    "accommodation": N_("The accommodation was updated."),
    "consent": N_("The consent was recorded."),
    "consent_withdrawn": N_("The consent was withdrawn."),
    "track": N_("The status was updated."),
}


# -- caseload ------------------------------------------------------------------------------------
def due_status(ctx: AppContext, case: Case, now: datetime) -> str | None:
    if case.next_due_at is None:
        return None
    if case.next_due_at < now:
        return "overdue"
    soon = ctx.profile(case.country_profile).due_soon_days
    return "due_soon" if case.next_due_at - now <= timedelta(days=soon) else "pending"


@router.get("/cases")
def caseload(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    require_permission(ctx, actor, "case.read")
    params = request.query_params
    stage = params.get("stage") or None
    if stage not in labels.STAGES:
        stage = None
    errors: dict[str, str] = {}
    reference = (params.get("reference") or "").strip()
    if reference and not REFERENCE_RE.match(reference):
        errors["reference"] = translate(
            request, N_("Enter a case reference such as PSG-ABCD-1234.")
        )
        reference = ""
    raw_page = params.get("page") or "1"
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 100_000 else 1
    cases, total = service.list_cases(
        session,
        ctx,
        actor,
        stage=stage,
        reference=reference or None,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    now = utcnow()
    rows = [(case, due_status(ctx, case, now)) for case in cases]
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)

    def page_url(number: int) -> str:
        query = {"stage": stage or "", "reference": reference, "page": str(number)}
        return "/cases?" + "&".join(f"{k}={v}" for k, v in query.items() if v)

    return render(
        request,
        "cases/list.html",
        {
            "rows": rows,
            "total": total,
            "page": page,
            "pages": pages,
            "page_url": page_url,
            "filters": {"stage": stage or "", "reference": reference},
            "filtered": bool(stage or reference),
            "errors": errors,
            "stages": list(labels.STAGES),
        },
        block="results",
    )


# -- the case page -------------------------------------------------------------------------------
def _personal_groups(masked: Mapping[str, Mapping[str, bool]]) -> list[dict[str, Any]]:
    """Visible fields by group, in registry order: only what the policy returned."""
    groups: dict[str, list[tuple[str, bool]]] = {}
    for field in ALL_SEALED_FIELDS:
        table = masked.get(field.table)
        if table is None or field.name not in table:
            continue
        groups.setdefault(field.group, []).append((field.name, table[field.name]))
    return [
        {"name": name, "fields": fields, "any_value": any(has for _, has in fields)}
        for name, fields in groups.items()
    ]


def _action(case: Case, event: Event) -> dict[str, Any]:
    rule = TRANSITIONS[(Stage(case.stage), event)]
    return {
        "event": str(event),
        "needs_reason": rule.needs_reason,
        "decision": rule.decision,
        "legal_basis": rule.legal_basis,
        "closure": event == Event.close,
        "negative": event in NEGATIVE_EVENTS,
    }


def _track_events(status: str, table: Mapping[tuple[Any, Any], Any]) -> list[str]:
    return [str(event) for (source, event) in table if str(source) == status]


def case_context(
    request: Request,
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    *,
    form: Mapping[str, Any] | None = None,
    revealed: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    case, masked = service.view_case(session, ctx, actor, case_id)
    policy = ctx.policy
    role = actor.role

    def can(permission: str) -> bool:
        return policy.can(role, permission)

    now = utcnow()
    deadlines = [(d, d.status(now)) for d in transitions.case_deadlines(ctx, case)]
    events = transitions.events_for(session, ctx, actor, case)
    timeline = list(reversed(case_timeline(session, case.id)))
    consents = service.case_consents(session, case) if can("consent.manage") else []
    shares = service.case_shares(session, case)
    agencies = (
        service.active_agencies(session) if can("case.refer") or can("consent.manage") else []
    )
    is_child = case.age_band != "adult"
    names = service.agency_names(
        session,
        [case.owning_agency_id]
        + [e.actor_agency_id for e in timeline]
        + [s.agency_id for s in shares]
        + [c.recipient_agency_id for c in consents],
    )
    visible_groups = policy.visible_groups(role, case.stage)
    victim_fields = policy.visible_fields(role, case.stage, "victims")
    assessment_kinds = [
        kind
        for kind, (_, permission, _) in transitions.ASSESSMENTS.items()
        if can(permission) and (is_child or kind not in ("best_interests", "guardian_request"))
    ]
    if role == "guardian":
        assessment_kinds = [k for k in assessment_kinds if k == "best_interests"]
    if policy.role(role).scope in ("national", "none"):
        # Pseudonymised roles never author sealed text they could not read back.
        assessment_kinds = []
    note_kinds = (["assistance"] if can("assistance.record") else []) + (
        ["note", "contact"] if can("note.create") else []
    )
    proposal = None
    if case.negative_decision_proposed_by is not None:
        proposal = "mine" if case.negative_decision_proposed_by == actor.user_id else "other"
    refer_available = Event.refer in events
    return {
        "case": case,
        "owner_name": names.get(case.owning_agency_id, ""),
        "deadlines": deadlines,
        "groups": _personal_groups(masked),
        "revealed": dict(revealed or {}),
        "purposes": list(service.REVEAL_PURPOSES),
        "actions": [_action(case, e) for e in events],
        "refer_available": refer_available,
        "timeline": timeline[:50],
        "timeline_total": len(timeline),
        "agency_names": names,
        "consents": consents,
        "shares": shares,
        "agencies": [a for a in agencies if a.id != actor.agency_id],
        "consent_agencies": agencies,
        "referral_purposes": REFERRAL_PURPOSES,
        "access_roles": [r.value for r in Role if r.value not in ("admin", "coordinator")],
        "field_groups": list(FIELD_GROUPS),
        "is_child": is_child,
        "guardians": service.guardian_candidates(session)
        if can("case.update") and is_child
        else [],
        "notes_visible": "notes" in visible_groups,
        "note_kinds": note_kinds,
        "assessment_kinds": assessment_kinds,
        "accommodation_editable": can("victim.update") and "accommodation" in victim_fields,
        "proceedings_events": _track_events(case.proceedings_status, PROCEEDINGS_TRANSITIONS)
        + (["claim_compensation"] if not case.compensation_claimed else [])
        if can("proceedings.manage")
        else [],
        "permit_events": _track_events(case.residence_permit_status, PERMIT_TRANSITIONS)
        if can("residence.manage")
        else [],
        "proposal": proposal,
        "form": dict(form or {}),
        "error_notice": (form or {}).get("error")
        or (
            translate(request, N_("Some values are not valid. Check the form and try again."))
            if (form or {}).get("errors")
            else None
        ),
        "today": now.date().isoformat(),
        "notice": translate(request, SAVED[request.query_params.get("saved", "")])
        if request.query_params.get("saved", "") in SAVED
        else None,
    }


def case_page(
    request: Request,
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    *,
    status_code: int = 200,
    form: Mapping[str, Any] | None = None,
    revealed: Mapping[str, Mapping[str, Any]] | None = None,
) -> Response:
    context = case_context(request, session, ctx, actor, case_id, form=form, revealed=revealed)
    return render(request, "cases/detail.html", context, status_code=status_code)


@router.get("/cases/{case_id}")
def case_detail(
    case_id: uuid.UUID, request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    return case_page(request, session, ctx, actor, case_id)


@router.get("/cases/{case_id}/timeline")
def case_timeline_page(
    case_id: uuid.UUID, request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    case = service.load_case(session, ctx, actor, case_id)
    service.require(ctx, actor, "case.read")
    timeline = list(reversed(case_timeline(session, case.id)))
    names = service.agency_names(session, [e.actor_agency_id for e in timeline])
    return render(
        request,
        "cases/timeline.html",
        {"case": case, "timeline": timeline, "agency_names": names},
    )


# -- reveal ----------------------------------------------------------------------------------------
def _group_fields(group: str, masked: Mapping[str, Mapping[str, bool]]) -> list[str]:
    names = FIELD_GROUPS.get(group, ())
    return [
        n
        for n in names
        if FIELD_BY_NAME[n].table in masked and masked[FIELD_BY_NAME[n].table].get(n)
    ]


@router.post("/cases/{case_id}/reveal")
def reveal(
    case_id: uuid.UUID,
    request: Request,
    form: Form,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    group = text(form, "group", limit=40)
    purpose = text(form, "purpose", limit=40)
    case = service.load_case(session, ctx, actor, case_id)
    masked = service.masked_fields(session, ctx, actor, case)
    names = _group_fields(group, masked)
    if group not in FIELD_GROUPS or not names:
        raise NotFound()
    values = service.reveal(session, ctx, actor, case_id, names, purpose)
    if is_htmx(request):
        group_info = next(g for g in _personal_groups(masked) if g["name"] == group)
        return render(
            request,
            "cases/detail.html",
            {
                "case": case,
                "group": group_info,
                "revealed": {group: values},
                "purposes": list(service.REVEAL_PURPOSES),
            },
            block="personal_group",
        )
    return case_page(request, session, ctx, actor, case_id, revealed={group: values})


@router.get("/cases/{case_id}/masked/{group}")
def hide(
    case_id: uuid.UUID,
    group: str,
    request: Request,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    """Mask a revealed group again (htmx); without JavaScript, the case page."""
    case = service.load_case(session, ctx, actor, case_id)
    service.require(ctx, actor, "case.read")
    masked = service.masked_fields(session, ctx, actor, case)
    found = [g for g in _personal_groups(masked) if g["name"] == group]
    if not found:
        raise NotFound()
    if not is_htmx(request):
        return redirect(request, f"/cases/{case.id}#group-{group}")
    return render(
        request,
        "cases/detail.html",
        {
            "case": case,
            "group": found[0],
            "revealed": {},
            "purposes": list(service.REVEAL_PURPOSES),
        },
        block="personal_group",
    )


# -- notes ---------------------------------------------------------------------------------------
@router.get("/cases/{case_id}/notes")
def notes(
    case_id: uuid.UUID, request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    case = service.load_case(session, ctx, actor, case_id)
    service.require(ctx, actor, "case.read")
    if "notes" not in ctx.policy.visible_groups(actor.role, case.stage):
        raise NotFound()
    rows = service.notes_view(session, ctx, actor, case)
    # Inside the case page the list sits under an h2; on its own page, under the h1.
    level = 3 if is_htmx(request) else 2
    return render(
        request, "cases/notes.html", {"case": case, "notes": rows, "level": level}, block="notes"
    )


# -- actions -------------------------------------------------------------------------------------
def _pydantic_errors(
    request: Request, exc: ValidationError, rename: Mapping[str, str]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        key = loc[0] if loc else ""
        field = rename.get(key, key)
        out.setdefault(field, translate(request, field_error(err)))
    return out


def _done(request: Request, case_id: uuid.UUID, saved: str, anchor: str) -> Response:
    return redirect(request, f"/cases/{case_id}?saved={saved}#{anchor}")


def _act(
    request: Request,
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case_id: uuid.UUID,
    *,
    form_id: str,
    values: Mapping[str, Any],
    errors: Mapping[str, str] | None,
    action: Callable[[], object],
    saved: str,
    anchor: str,
) -> Response:
    """Run a case action; on any problem show the case page again with the form as typed."""
    if errors:
        state = {"id": form_id, "values": dict(values), "errors": dict(errors), "error": None}
        return case_page(request, session, ctx, actor, case_id, status_code=422, form=state)
    _, failure = attempt(session, action)
    if failure is not None:
        if isinstance(failure, NotFound):
            raise failure
        state = {
            "id": form_id,
            "values": dict(values),
            "errors": {},
            "error": domain_message(request, failure),
        }
        return case_page(
            request, session, ctx, actor, case_id, status_code=failure.status_code, form=state
        )
    return _done(request, case_id, saved, anchor)


@router.post("/cases/{case_id}/transition")
def fire_event(
    case_id: uuid.UUID,
    request: Request,
    form: Form,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    raw_event = text(form, "event", limit=60)
    reason = text(form, "reason") or None
    legal_basis = text(form, "legal_basis", limit=300) or None
    closure = text(form, "closure_reason", limit=60) or None
    values = {"reason": reason or "", "legal_basis": legal_basis or "", "closure_reason": closure}
    errors: dict[str, str] = {}
    try:
        event = Event(raw_event)
    except ValueError as exc:
        raise NotFound() from exc
    case = service.load_case(session, ctx, actor, case_id)
    rule = TRANSITIONS.get((Stage(case.stage), event))
    if rule is not None and rule.needs_reason and not reason:
        errors["reason"] = translate(request, N_("Give the reasons for this step."))
    if rule is not None and rule.decision and not legal_basis and not rule.legal_basis:
        errors["legal_basis"] = translate(request, N_("Give the legal basis for this decision."))
    if event == Event.close and closure not in {r.value for r in ClosureReason}:
        errors["closure_reason"] = translate(request, N_("Choose a closure reason."))
    version = version_of(form)

    def action() -> object:
        return transitions.transition(
            session,
            ctx,
            actor,
            case_id,
            transitions.TransitionInput(
                event=event, reason=reason, legal_basis=legal_basis, closure_reason=closure
            ),
            version,
        )

    return _act(
        request,
        session,
        ctx,
        actor,
        case_id,
        form_id=f"transition-{event}",
        values=values,
        errors=errors,
        action=action,
        saved="transition",
        anchor="actions",
    )


@router.post("/cases/{case_id}/referrals")
def refer(
    case_id: uuid.UUID,
    request: Request,
    form: Form,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    # Scope before permission: a foreign case is "not found" (and audited) for every role.
    case = service.load_case(session, ctx, actor, case_id)
    require_permission(ctx, actor, "case.refer")
    agency = text(form, "agency_id", limit=40)
    access_role = text(form, "access_role", limit=40)
    purpose = text(form, "purpose", limit=40)
    fire = checked(form, "fire_refer")
    values = {"agency_id": agency, "access_role": access_role, "purpose": purpose, "fire": fire}
    errors: dict[str, str] = {}
    data: ReferralIn | None = None
    if purpose not in REFERRAL_PURPOSES:
        errors["purpose"] = translate(request, N_("Choose one of the options."))
    if access_role not in {r.value for r in Role} - {"admin", "coordinator"}:
        errors["access_role"] = translate(request, N_("Choose one of the options."))
    try:
        agency_id = uuid.UUID(agency)
    except ValueError:
        errors["agency_id"] = translate(request, N_("Choose one of the options."))
    if not errors:
        try:
            data = ReferralIn(agency_id=agency_id, access_role=access_role, purpose=purpose)
        except ValidationError as exc:
            errors.update(_pydantic_errors(request, exc, {}))
    if fire and Event.refer not in transitions.events_for(session, ctx, actor, case):
        errors["fire_refer"] = translate(
            request, N_("The case cannot be marked as referred now; share it without this option.")
        )
    version = version_of(form)

    def action() -> object:
        assert data is not None
        service.refer(session, ctx, actor, case_id, data)
        if fire:
            transitions.transition(
                session,
                ctx,
                actor,
                case_id,
                transitions.TransitionInput(event=Event.refer),
                version,
            )
        return None

    return _act(
        request,
        session,
        ctx,
        actor,
        case_id,
        form_id="referral",
        values=values,
        errors=errors,
        action=action,
        saved="referral",
        anchor="referrals",
    )


@router.post("/cases/{case_id}/referrals/{participant_id}/revoke")
def revoke_referral(
    case_id: uuid.UUID,
    participant_id: uuid.UUID,
    request: Request,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    service.revoke_share(session, ctx, actor, case_id, participant_id)
    return _done(request, case_id, "referral_revoked", "referrals")


@router.post("/cases/{case_id}/notes")
def add_note(
    case_id: uuid.UUID,
    request: Request,
    form: Form,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    kind = text(form, "kind", limit=20) or "assistance"
    body = text(form, "body")
    values = {"kind": kind, "body": body}
    errors: dict[str, str] = {}
    data: NoteIn | None = None
    try:
        data = NoteIn(kind=kind, body=body)
    except ValidationError as exc:
        errors = _pydantic_errors(request, exc, {})

    def action() -> object:
        assert data is not None
        return service.add_note(session, ctx, actor, case_id, data)

    return _act(
        request,
        session,
        ctx,
        actor,
        case_id,
        form_id="note",
        values=values,
        errors=errors,
        action=action,
        saved="note",
        anchor="notes-section",
    )


@router.post("/cases/{case_id}/assessments")
def add_assessment(
    case_id: uuid.UUID,
    request: Request,
    form: Form,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    kind = text(form, "kind", limit=40)
    body = text(form, "body")
    values = {"kind": kind, "body": body}
    errors: dict[str, str] = {}
    if kind not in transitions.ASSESSMENTS:
        errors["kind"] = translate(request, N_("Choose one of the options."))
    if not body:
        errors["body"] = translate(request, N_("This field is required."))
    version = version_of(form)

    def action() -> object:
        return transitions.record_assessment(session, ctx, actor, case_id, kind, body, version)

    return _act(
        request,
        session,
        ctx,
        actor,
        case_id,
        form_id="assessment",
        values=values,
        errors=errors,
        action=action,
        saved="assessment",
        anchor="assessments",
    )


@router.post("/cases/{case_id}/guardian")
def assign_guardian(
    case_id: uuid.UUID,
    request: Request,
    form: Form,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    raw = text(form, "guardian_user_id", limit=40)
    errors: dict[str, str] = {}
    guardian_id: uuid.UUID | None = None
    try:
        guardian_id = uuid.UUID(raw)
    except ValueError:
        errors["guardian_user_id"] = translate(request, N_("Choose one of the options."))
    version = version_of(form)

    def action() -> object:
        assert guardian_id is not None
        return transitions.assign_guardian(session, ctx, actor, case_id, guardian_id, version)

    return _act(
        request,
        session,
        ctx,
        actor,
        case_id,
        form_id="guardian",
        values={"guardian_user_id": raw},
        errors=errors,
        action=action,
        saved="guardian",
        anchor="guardian",
    )


@router.post("/cases/{case_id}/accommodation")
def update_accommodation(
    case_id: uuid.UUID,
    request: Request,
    form: Form,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    value = text(form, "accommodation", limit=400)
    values = {"accommodation": value}
    errors: dict[str, str] = {}
    patch: VictimFields | None = None
    try:
        patch = VictimFields(accommodation=value or None)
    except ValidationError as exc:
        errors = _pydantic_errors(request, exc, {})
    version = version_of(form)

    def action() -> object:
        assert patch is not None
        return service.update_victim(session, ctx, actor, case_id, patch, version)

    return _act(
        request,
        session,
        ctx,
        actor,
        case_id,
        form_id="accommodation",
        values=values,
        errors=errors,
        action=action,
        saved="accommodation",
        anchor="accommodation",
    )


def consent_from_form(
    request: Request, form: FormData, prefix: str
) -> tuple[ConsentIn | None, dict[str, Any], dict[str, str]]:
    """A consent from form fields named `<prefix>purpose`, `<prefix>scope`... as typed."""
    values: dict[str, Any] = {
        "purpose": text(form, f"{prefix}purpose", limit=40),
        "recipient_agency_id": text(form, f"{prefix}recipient_agency_id", limit=40),
        "recipient_description": text(form, f"{prefix}recipient_description", limit=400),
        "scope": texts(form, f"{prefix}scope", limit=40),
        "given_on": text(form, f"{prefix}given_on", limit=20),
        "expires_on": text(form, f"{prefix}expires_on", limit=20),
    }
    return (*parse_consent(request, values, prefix),)


def parse_consent(
    request: Request, values: Mapping[str, Any], prefix: str
) -> tuple[ConsentIn | None, dict[str, Any], dict[str, str]]:
    payload = {
        "purpose": values.get("purpose") or None,
        "recipient_agency_id": values.get("recipient_agency_id") or None,
        "recipient_description": values.get("recipient_description") or None,
        "scope": list(values.get("scope") or []),
        "given_on": values.get("given_on") or None,
        "expires_on": values.get("expires_on") or None,
    }
    try:
        return ConsentIn.model_validate(payload), dict(values), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            field = loc[0] if loc else "expires_on"
            errors.setdefault(prefix + field, translate(request, field_error(err)))
        return None, dict(values), errors


@router.post("/cases/{case_id}/consents")
def add_consent(
    case_id: uuid.UUID,
    request: Request,
    form: Form,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    data, values, errors = consent_from_form(request, form, "")

    def action() -> object:
        assert data is not None
        return service.add_consent(session, ctx, actor, case_id, data)

    return _act(
        request,
        session,
        ctx,
        actor,
        case_id,
        form_id="consent",
        values=values,
        errors=errors,
        action=action,
        saved="consent",
        anchor="consents",
    )


@router.post("/cases/{case_id}/consents/{consent_id}/withdraw")
def withdraw_consent(
    case_id: uuid.UUID,
    consent_id: uuid.UUID,
    request: Request,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    service.withdraw_consent(session, ctx, actor, case_id, consent_id)
    return _done(request, case_id, "consent_withdrawn", "consents")


@router.post("/cases/{case_id}/tracks/{track}")
def track(
    case_id: uuid.UUID,
    track: str,
    request: Request,
    form: Form,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    if track not in ("proceedings", "residence_permit"):
        raise NotFound()
    event = text(form, "event", limit=40)
    raw_from, raw_until = text(form, "valid_from", limit=20), text(form, "valid_until", limit=20)
    values = {"event": event, "valid_from": raw_from, "valid_until": raw_until}
    errors: dict[str, str] = {}
    dates: dict[str, date | None] = {}
    for name, raw in (("valid_from", raw_from), ("valid_until", raw_until)):
        try:
            dates[name] = date.fromisoformat(raw) if raw else None
        except ValueError:
            errors[name] = translate(request, N_("Enter a valid date."))
            dates[name] = None
    known = (
        {str(e) for e in labels.PROCEEDINGS_EVENTS}
        if track == "proceedings"
        else {str(e) for e in labels.PERMIT_EVENTS}
    )
    if event not in known:
        errors["event"] = translate(request, N_("Choose one of the options."))
    version = version_of(form)

    def action() -> object:
        return transitions.track_event(
            session,
            ctx,
            actor,
            case_id,
            track=track,
            event=event,
            expected_version=version,
            valid_from=dates["valid_from"],
            valid_until=dates["valid_until"],
        )

    return _act(
        request,
        session,
        ctx,
        actor,
        case_id,
        form_id=f"track-{track}",
        values=values,
        errors=errors,
        action=action,
        saved="track",
        anchor="tracks",
    )
