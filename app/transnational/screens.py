"""The focal point's screens: outbox and inbox, a thread, and sending a referral after the
consent check and the package preview.

Server-rendered (Jinja2 + htmx) on the web layer's environment (``app.web.templating``):
autoescaping, locale, CSRF token in every form. Screens of other roles do not exist (404).
They call the same services as the JSON API (app/transnational/routes.py), so the rules,
scoping and audit trail are the same.

Nothing personal is shown here: codes, dates, partner institutions, pseudonymous case
references and field *names*. The preview lists which fields would leave the country,
by name, without decrypting a single value; the package is built only when it is sent.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.auth.actor import Actor
from app.auth.dependencies import CurrentActor
from app.cases import service as cases
from app.cases.models import Case
from app.context import AppContext, Ctx
from app.db.session import DbSession
from app.errors import DomainError, NotFound
from app.transnational import directory, outgoing, reads
from app.transnational.models import Partner
from app.transnational.schemas import ExchangeOut, PreviewOut, ReferralIn
from app.transnational.vocab import PackagePurpose
from app.web.deps import Form, attempt, checked, require_permission, text
from app.web.errors import HtmlRoute, redirect
from app.web.i18n import N_
from app.web.templating import render

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

PAGE_SIZE = 50

PURPOSES: dict[str, str] = {
    PackagePurpose.return_preparation: N_("Return preparation"),
    PackagePurpose.request_for_information: N_("Request for information"),
    PackagePurpose.case_management_handover: N_("Hand-over of case management"),
    PackagePurpose.post_return_follow_up: N_("Post-return follow-up report"),
}
STATUSES: dict[str, str] = {
    "queued": N_("Waiting to be delivered"),
    "delivered": N_("Delivered, acknowledged"),
    "received": N_("Received, decision needed"),
    "accepted": N_("Accepted"),
    "rejected": N_("Rejected"),
    "travel_arranged": N_("Travel arranged"),
    "arrived": N_("Arrived"),
    "handed_over": N_("Handed over"),
    "monitoring": N_("Reintegration monitoring"),
    "closed": N_("Closed"),
    "refused_by_partner": N_("Refused by the partner"),
    "delivery_failed": N_("Delivery failed"),
    "consent_withdrawn": N_("Consent withdrawn: sending stopped"),
}
MESSAGE_STATES: dict[str, str] = {
    "queued": N_("Queued"),
    "delivered": N_("Delivered (signed receipt)"),
    "refused": N_("Refused by the partner"),
    "failed": N_("Failed"),
    "cancelled": N_("Cancelled"),
    "expired": N_("Expired"),
    "received": N_("Received (signed receipt sent)"),
}
DUE_KINDS: dict[str, str] = {
    "acknowledgement": N_("Acknowledgement by the partner"),
    "decision": N_("Our decision (accept or reject)"),
    "follow_up_report": N_("Follow-up report to send"),
    "follow_up_expected": N_("Follow-up report expected"),
}
EXCLUSIONS: dict[str, str] = {
    "never_leaves_the_country": N_("Never leaves the country"),
    "not_needed_for_this_purpose": N_("Not needed for this purpose"),
    "not_covered_by_consent": N_("Not covered by the person's consent"),
}
PROBLEMS: dict[str, str] = {
    "no_valid_consent_for_this_recipient_and_purpose": N_(
        "No valid consent names this partner for this purpose."
    ),
    "consent_covers_no_field_needed_for_this_purpose": N_(
        "The consent covers none of the fields this purpose needs."
    ),
    "partner_suspended": N_("This partner is suspended in the directory."),
    "no_partner_encryption_key_pinned": N_(
        "No encryption key is pinned for this partner; ask an administrator."
    ),
    "exchange_identity_not_configured": N_(
        "This instance's exchange identity is not configured; ask an administrator."
    ),
}


def _labels() -> dict[str, Any]:
    return {
        "purposes": PURPOSES,
        "statuses": STATUSES,
        "message_states": MESSAGE_STATES,
        "due_kinds": DUE_KINDS,
        "exclusions": EXCLUSIONS,
        "problems": PROBLEMS,
    }


def _page(request: Request) -> int:
    raw = request.query_params.get("page") or "1"
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1


# -- outbox and inbox ----------------------------------------------------------------------------
@router.get("/transnational")
def exchanges_page(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    """Outbox (what we sent) and inbox (what partners sent us), what is due first."""
    require_permission(ctx, actor, "handover.manage")
    status = request.query_params.get("status") or ""
    if status not in STATUSES:
        status = ""
    boxes = {}
    for direction in ("outgoing", "incoming"):
        page = reads.list_exchanges(
            session,
            ctx,
            actor,
            direction=direction,
            status=status or None,
            limit=PAGE_SIZE,
            offset=0,
        )
        boxes[direction] = (_due_first(page.items), page.total)
    return render(
        request,
        "transnational/exchanges.html",
        {"boxes": boxes, "status": status, "reference": "", **_labels()},
        block="results",
    )


def _due_first(items: list[ExchangeOut]) -> list[ExchangeOut]:
    """Overdue first, then by the next due date; threads with nothing due last."""

    def key(e: ExchangeOut) -> tuple[int, str]:
        if not e.due:
            return (2, "")
        first = e.due[0]
        return (0 if any(d.overdue for d in e.due) else 1, first.due_at.isoformat())

    return sorted(items, key=key)


@router.get("/transnational/exchanges/{exchange_id}")
def exchange_page(
    exchange_id: uuid.UUID, request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    require_permission(ctx, actor, "handover.manage")
    thread = reads.get_exchange(session, ctx, actor, exchange_id)
    partner = session.get(Partner, thread.partner_id)
    notice = "sent" if request.query_params.get("sent") == "1" else None
    return render(
        request,
        "transnational/exchange.html",
        {"thread": thread, "partner": partner, "sent": notice, **_labels()},
    )


# -- sending: find the case, consent check and preview, send --------------------------------------
@router.get("/transnational/send")
def find_case(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    """Open the send screen of a case by its reference (a case shared with our agency)."""
    require_permission(ctx, actor, "handover.manage")
    reference = (request.query_params.get("reference") or "").strip().upper()[:40]
    found, _ = cases.list_cases(
        session, ctx, actor, stage=None, reference=reference or None, limit=2, offset=0
    )
    match = [c for c in found if c.reference == reference] if reference else []
    if len(match) == 1:
        return redirect(request, f"/transnational/cases/{match[0].id}/send")
    return render(
        request,
        "transnational/exchanges.html",
        {
            "boxes": {},
            "status": "",
            "reference": reference,
            "reference_error": N_("No case with this reference is shared with your agency."),
            **_labels(),
        },
        status_code=404,
    )


def _partners(session: Session, ctx: AppContext, actor: Actor) -> list[Partner]:
    return [p for p in directory.list_partners(session, ctx, actor) if p.status == "active"]


def _choice(
    session: Session, partner_raw: str, purpose_raw: str
) -> tuple[Partner | None, PackagePurpose | None]:
    partner = None
    try:
        partner = session.get(Partner, uuid.UUID(partner_raw)) if partner_raw else None
    except ValueError:
        partner = None
    purpose = PackagePurpose(purpose_raw) if purpose_raw in PURPOSES else None
    return partner, purpose


def _send_page(
    request: Request,
    session: Session,
    ctx: AppContext,
    actor: Actor,
    case: Case,
    partner: Partner | None,
    purpose: PackagePurpose | None,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    """The send screen for a case the caller already loaded in scope."""
    preview: PreviewOut | None = None
    if partner is not None and purpose is not None:
        preview = outgoing.preview(session, ctx, actor, case.id, partner.id, purpose)
    return render(
        request,
        "transnational/send.html",
        {
            "case": case,
            "partners": _partners(session, ctx, actor),
            "partner": partner,
            "purpose": str(purpose) if purpose else "",
            "preview": preview,
            "send_error": error,
            **_labels(),
        },
        status_code=status_code,
        block="preview",
    )


@router.get("/transnational/cases/{case_id}/send")
def send_page(
    case_id: uuid.UUID, request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    """Choose the partner and purpose; the consent check and the preview follow at once."""
    # Scope before permission: a foreign case is "not found" and audited for every role.
    case = cases.load_case(session, ctx, actor, case_id)
    require_permission(ctx, actor, "handover.manage")
    q = request.query_params
    partner, purpose = _choice(session, q.get("partner_id") or "", q.get("purpose") or "")
    return _send_page(request, session, ctx, actor, case, partner, purpose)


@router.post("/transnational/cases/{case_id}/send")
def send(
    case_id: uuid.UUID,
    request: Request,
    form: Form,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
) -> Response:
    """Send exactly what the preview showed: the service checks consent again and builds the
    package from the same rules, inside this request's transaction."""
    case = cases.load_case(session, ctx, actor, case_id)
    require_permission(ctx, actor, "handover.manage")
    partner, purpose = _choice(session, text(form, "partner_id", limit=40), text(form, "purpose"))
    if partner is None or purpose is None:
        raise NotFound()
    if not checked(form, "confirm"):
        return _send_page(
            request,
            session,
            ctx,
            actor,
            case,
            partner,
            purpose,
            error=N_("Confirm that you checked the fields that will leave the country."),
            status_code=422,
        )
    data = ReferralIn(partner_id=partner.id, purpose=purpose)
    queued, problem = attempt(
        session, lambda: outgoing.send_referral(session, ctx, actor, case_id, data)
    )
    if problem is not None or queued is None:
        return _send_page(
            request,
            session,
            ctx,
            actor,
            case,
            partner,
            purpose,
            error=_problem_text(problem),
            status_code=problem.status_code if problem else 409,
        )
    return redirect(request, f"/transnational/exchanges/{queued.exchange_id}?sent=1")


def _problem_text(problem: DomainError | None) -> str:
    # Domain messages never hold personal data (app/errors.py).
    return problem.message if problem is not None else N_("Nothing was sent.")
