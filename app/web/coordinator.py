"""The coordinator's start page: links to the dashboards and a lookup by case reference.

Coordinators see cases nationally but pseudonymised: their visibility policy returns no
sealed field, so every screen they reach shows codes, stages, dates and references only.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.auth.dependencies import CurrentActor
from app.cases import service
from app.context import Ctx
from app.db.session import DbSession
from app.web.deps import require_role
from app.web.errors import HtmlRoute
from app.web.i18n import N_
from app.web.templating import render, translate

router = APIRouter(route_class=HtmlRoute)

# Dashboards served under /coordinator/... by the reporting screens (app/reporting).
DASHBOARDS: list[tuple[str, str, str]] = [
    (
        "/coordinator/dashboard",
        N_("Referral timelines"),
        N_("Time from detection to referral and to each decision, against the targets."),
    ),
    (
        "/coordinator/overdue",
        N_("Overdue deadlines"),
        N_("Open cases with overdue or soon-due deadlines, by agency."),
    ),
    (
        "/coordinator/statistics",
        N_("Statistics"),
        N_("Pseudonymised figures by stage, age band, sex, nationality and form of exploitation."),
    ),
]
REFERENCE_RE = re.compile(r"^[A-Za-z0-9\-]{1,20}$")


@router.get("/coordinator")
def coordinator(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    require_role(actor, "coordinator")
    reference = (request.query_params.get("reference") or "").strip()
    errors: dict[str, str] = {}
    found = None
    searched = False
    if reference:
        if not REFERENCE_RE.match(reference):
            errors["reference"] = translate(
                request, N_("Enter a case reference such as PSG-ABCD-1234.")
            )
        else:
            searched = True
            cases, _ = service.list_cases(
                session, ctx, actor, stage=None, reference=reference, limit=1, offset=0
            )
            found = cases[0] if cases else None
    return render(
        request,
        "coordinator.html",
        {
            "dashboards": DASHBOARDS,
            "reference": reference if not errors else "",
            "errors": errors,
            "found": found,
            "searched": searched,
        },
    )
