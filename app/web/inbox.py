"""The identification authority's inbox: referred cases awaiting a decision, due first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.auth.dependencies import CurrentActor
from app.cases import service
from app.context import Ctx
from app.db.base import utcnow
from app.db.session import DbSession
from app.web.case_pages import PAGE_SIZE, due_status
from app.web.deps import require_role
from app.web.errors import HtmlRoute
from app.web.i18n import N_
from app.web.templating import render

router = APIRouter(route_class=HtmlRoute)

INBOX_STAGES: dict[str, str] = {
    "referred": N_("Accept the referral"),
    "reasonable_grounds_pending": N_("Reasonable-grounds decision"),
    "identification_pending": N_("Identification decision"),
    "reconsideration": N_("Reconsideration"),
}


@router.get("/inbox")
def inbox(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    require_role(actor, "police_officer")
    stage = request.query_params.get("stage") or ""
    stages = [stage] if stage in INBOX_STAGES else list(INBOX_STAGES)
    raw_page = request.query_params.get("page") or "1"
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 100_000 else 1
    cases, total = service.decision_inbox(
        session, ctx, actor, stages=stages, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    now = utcnow()
    rows = []
    for case in cases:
        review = None
        if case.negative_decision_proposed_by is not None:
            review = "mine" if case.negative_decision_proposed_by == actor.user_id else "other"
        rows.append((case, due_status(ctx, case, now), review))
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)

    def page_url(number: int) -> str:
        query = f"stage={stage}&" if stage in INBOX_STAGES else ""
        return f"/inbox?{query}page={number}"

    return render(
        request,
        "inbox.html",
        {
            "rows": rows,
            "total": total,
            "page": page,
            "pages": pages,
            "page_url": page_url,
            "stage": stage if stage in INBOX_STAGES else "",
            "inbox_stages": INBOX_STAGES,
        },
        block="results",
    )
