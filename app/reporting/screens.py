"""Coordinator dashboards and audit screens (HTML + htmx, server-rendered SVG charts).

Every view is a GET whose filters are query parameters (a shareable URL that keeps its
state); the filter form updates the page body with htmx and pushes the URL. Screens reuse
the web layer's environment (``app.web.templating``): autoescaping, locale, CSRF token.
Visible text goes through ``t()``: labels are marked ``N_`` here (see docs/reporting.md on
adding them to the catalogs).

Nothing on these screens is personal: figures, codes, dates, agency names and pseudonymous
case references. The case timeline a coordinator opens is the workflow's own page
(``/cases/{id}/timeline``), which shows the same codes.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from app.agencies.models import Agency
from app.audit import service as audit
from app.audit.service import verify_chains
from app.auth import break_glass
from app.auth.dependencies import CurrentActor
from app.cases.models import Case
from app.context import AppContext, Ctx
from app.db.session import DbSession
from app.errors import InvalidInput
from app.reporting import charts, exports
from app.reporting.api import access_log, grant_rows
from app.reporting.indicators import (
    COUNT_BY_NAME,
    FUNNEL_STEPS,
    GROUP_DIMENSIONS,
    Filters,
    drill_down,
    indicators,
    make_filters,
    overdue_by_agency,
)
from app.reporting.indicators import dashboard as dashboard_data
from app.vocab import AgeBand, DetectingOrganisationType, ExploitationForm, Sex
from app.web.deps import Form, require_permission, text
from app.web.errors import HtmlRoute
from app.web.i18n import N_
from app.web.templating import render

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

PAGE_SIZE = 50
# Figures of the indicator table that open the list of cases behind them.
DRILL: dict[tuple[str, str], str] = {
    ("detection_to_referral", "late"): "referral_late",
    ("detection_to_referral", "pending"): "referral_pending",
    ("referral_to_reasonable_grounds", "late"): "rg_late",
    ("referral_to_reasonable_grounds", "pending"): "rg_pending",
    ("referral_to_reasonable_grounds", "pending_past_target"): "rg_pending_overdue",
    ("rg_to_first_support_contact", "late"): "contact_late",
    ("rg_to_first_support_contact", "no_contact_past_target"): "contact_missing_overdue",
    ("reflection_compliance", "cut_short"): "reflection_breached",
    ("reflection_compliance", "episodes_with_enforcement"): "enforcement_episodes",
    ("rg_to_identification", "before_minimum"): "id_before_min",
    ("rg_to_identification", "pending"): "id_pending",
    ("rg_to_identification", "pending_over_90"): "id_pending_over_90",
    ("rg_to_identification", "pending_over_180"): "id_pending_over_180",
    ("rg_to_identification", "pending_over_365"): "id_pending_over_365",
    ("assistance_conditionality", "events"): "assistance_refusals",
    ("children", "awaiting_guardian"): "guardian_pending",
    ("children", "still_missing"): "missing_child_open",
    ("consent_completeness", "missing"): "referral_consent_missing",
    ("reconsideration", "pending"): "reconsideration_pending",
    ("return", "child_returns_without_best_interests"): "return_child_without_bia",
    ("post_return", "re_trafficking_reports"): "re_trafficked",
}
GROUP_LABELS = {
    "country_profile": N_("Country profile"),
    "agency": N_("Agency"),
    "region": N_("Region"),
    "nationality": N_("Nationality"),
    "sex": N_("Sex"),
    "age_band": N_("Age band"),
    "exploitation": N_("Form of exploitation"),
    "detecting_org_type": N_("First responder type"),
    "year": N_("Year of detection"),
    "quarter": N_("Quarter of detection"),
    "month": N_("Month of detection"),
}
EXPORT_LABELS = {
    "nrm_quarterly": N_("UK NRM quarterly tables"),
    "eurostat": N_("Eurostat tables"),
    "ctdc_records": N_("CTDC/HTCDS records (k-anonymous)"),
}


def _filters(request: Request, ctx: AppContext) -> Filters:
    q = request.query_params
    agency = (q.get("agency_id") or "").strip()
    try:
        agency_id = uuid.UUID(agency) if agency else None
        date_from = date.fromisoformat(q["from"]) if q.get("from") else None
        date_to = date.fromisoformat(q["to"]) if q.get("to") else None
    except ValueError as exc:
        raise InvalidInput("a filter value is not valid (dates are YYYY-MM-DD)") from exc
    return make_filters(
        ctx,
        period=q.get("period"),
        date_from=date_from,
        date_to=date_to,
        basis=q.get("basis") or "detection",
        country_profile=q.get("country_profile"),
        agency_id=agency_id,
        region=q.get("region"),
        nationality=q.get("nationality"),
        sex=q.get("sex"),
        age_band=q.get("age_band"),
        exploitation_form=q.get("exploitation_form"),
        detecting_org_type=q.get("detecting_org_type"),
    )


def _url(path: str, params: dict[str, str]) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(clean)}" if clean else path


def _agencies(session: DbSession) -> list[tuple[str, str]]:
    rows = session.execute(select(Agency.id, Agency.name).order_by(Agency.name))
    return [(str(agency_id), name) for agency_id, name in rows]


def _filter_context(
    request: Request, session: DbSession, ctx: AppContext, f: Filters
) -> dict[str, Any]:
    return {
        "filters": f,
        "params": f.as_params(),
        "values": dict(request.query_params),
        "profiles": sorted(ctx.profiles),
        "agencies": _agencies(session),
        "sexes": [s.value for s in Sex],
        "age_bands": [a.value for a in AgeBand],
        "forms": [e.value for e in ExploitationForm],
        "responders": [d.value for d in DetectingOrganisationType],
        "url": _url,
    }


def _humanise(key: str) -> str:
    return key.replace("_pct", " (%)").replace("_", " ").capitalize()


def _table_rows(blocks: list[dict[str, Any]], params: dict[str, str]) -> list[dict[str, Any]]:
    """Indicator blocks as rows of (label, shown value, link to the cases behind it)."""
    out = []
    for block in blocks:
        rows = []
        for key, value in block["values"].items():
            if isinstance(value, dict):  # follow-up checkpoints
                for checkpoint, figures in value.items():
                    shown = f"{figures['reached']} / {figures['due']}"
                    if figures["reached_pct"] is not None:
                        shown += f" ({figures['reached_pct']} %)"
                    rows.append(
                        {"label": checkpoint.replace("_", " "), "value": shown, "href": None}
                    )
                continue
            drill = DRILL.get((block["id"], key))
            href = None
            if drill and isinstance(value, int) and value > 0:
                href = _url("/coordinator/cases", {**params, "indicator": drill})
            rows.append(
                {
                    "label": _humanise(key),
                    "value": "\u2013" if value is None else value,
                    "href": href,
                }
            )
        out.append({**block, "rows": rows})
    return out


@router.get("/coordinator/dashboard")
def dashboard(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    require_permission(ctx, actor, "stats.read")
    f = _filters(request, ctx)
    everything = dashboard_data(session, ctx, f)
    body, shape = everything["indicators"], everything["funnel"]
    trend, overdue = everything["trend"], everything["overdue"]
    blocks = {b["id"]: b["values"] for b in body["indicators"]}
    params = f.as_params()
    reached = [(step["label"], step["episodes"]) for step in shape["reached"]]
    funnel_chart = charts.bar_chart(
        reached,
        hrefs=[
            _url("/coordinator/cases", {**params, "indicator": key})
            if key in COUNT_BY_NAME
            else None
            for key, _ in FUNNEL_STEPS
        ],
    )
    distribution = charts.bar_chart([(d["label"], d["n"]) for d in trend["distribution"]])
    trend_chart = charts.line_chart([(q["quarter"], q["median"]) for q in trend["trend"]])
    tiles = [
        (N_("Episodes"), body["population"]["episodes"], None),
        (N_("Referred"), blocks["detection_to_referral"]["referred"], None),
        (
            N_("Reasonable grounds on target"),
            _pct(blocks["referral_to_reasonable_grounds"]["on_target_pct"]),
            _url("/coordinator/cases", {**params, "indicator": "rg_late"}),
        ),
        (
            N_("Median days to identification"),
            _num(blocks["rg_to_identification"]["median_days"]),
            None,
        ),
        (
            N_("Awaiting identification over a year"),
            blocks["rg_to_identification"]["pending_over_365"],
            _url("/coordinator/cases", {**params, "indicator": "id_pending_over_365"}),
        ),
        (
            N_("Overdue deadlines"),
            sum(a["overdue"] for a in overdue["agencies"]),
            _url("/coordinator/overdue", params),
        ),
        (
            N_("Break-glass awaiting review"),
            blocks["access"]["grants_awaiting_review"],
            "/coordinator/audit",
        ),
    ]
    return render(
        request,
        "reporting/dashboard.html",
        {
            **_filter_context(request, session, ctx, f),
            "tiles": tiles,
            "blocks": _table_rows(body["indicators"], params),
            "funnel": funnel_chart,
            "current": [s for s in shape["current_stage"] if s["cases"]],
            "distribution": distribution,
            "trend": trend["trend"],
            "trend_chart": trend_chart,
            "overdue": overdue["agencies"][:10],
            "generated_at": body["generated_at"],
        },
        block="dashboard_body",
    )


def _pct(value: float | None) -> str:
    return "\u2013" if value is None else f"{value} %"


def _num(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:g}"


@router.get("/coordinator/overdue")
def overdue_page(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    require_permission(ctx, actor, "stats.read")
    f = _filters(request, ctx)
    body = overdue_by_agency(session, ctx, f)
    kinds = sorted({kind for a in body["agencies"] for kind in a["by_kind"]})
    return render(
        request,
        "reporting/overdue.html",
        {
            **_filter_context(request, session, ctx, f),
            "rows": body["agencies"],
            "kinds": kinds,
            "generated_at": body["generated_at"],
        },
        block="report_body",
    )


@router.get("/coordinator/statistics")
def statistics(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    require_permission(ctx, actor, "stats.read")
    f = _filters(request, ctx)
    group_by = request.query_params.get("group_by") or "nationality"
    if group_by not in GROUP_DIMENSIONS:
        raise InvalidInput("choose a breakdown from the list")
    body = indicators(session, ctx, f, group_by=group_by)
    names = dict(_agencies(session)) if group_by == "agency" else {}
    groups = []
    for group in body["groups"]:
        values = {b["id"]: b["values"] for b in group["indicators"]}
        groups.append(
            {
                "key": group["key"],
                "label": names.get(group["key"], group["key"]),
                "episodes": group["episodes"],
                "small": group["small"],
                "referred": values["detection_to_referral"]["referred"],
                "referral_on_time": values["detection_to_referral"]["on_time_pct"],
                "rg_on_target": values["referral_to_reasonable_grounds"]["on_target_pct"],
                "rg_median": values["referral_to_reasonable_grounds"]["median_working_days"],
                "id_median": values["rg_to_identification"]["median_days"],
                "id_pending": values["rg_to_identification"]["pending"],
                "identified": values["presumed_vs_identified"]["identified"],
            }
        )
    params = f.as_params()
    export_links = [
        (label, _url(f"/api/v1/reporting/exports/{kind}", {**params, "format": fmt}), fmt)
        for kind, label in EXPORT_LABELS.items()
        for fmt in ("csv", "json")
    ]
    return render(
        request,
        "reporting/statistics.html",
        {
            **_filter_context(request, session, ctx, f),
            "group_by": group_by,
            "group_labels": GROUP_LABELS,
            "groups": groups,
            "export_links": export_links,
            "k_tables": exports.DEFAULT_K_TABLES,
            "k_records": exports.DEFAULT_K_RECORDS,
            "generated_at": body["generated_at"],
        },
        block="report_body",
    )


@router.get("/coordinator/cases")
def cases_page(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    require_permission(ctx, actor, "stats.read")
    f = _filters(request, ctx)
    q = request.query_params
    indicator = (q.get("indicator") or "").strip() or None
    overdue = (q.get("overdue") or "").strip() or None
    page = int(q["page"]) if (q.get("page") or "").isdigit() and int(q["page"]) > 0 else 1
    body = drill_down(
        session,
        ctx,
        f,
        indicator=indicator,
        overdue_kind=overdue,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    pages = max(1, -(-body["total"] // PAGE_SIZE))
    params = {**f.as_params(), "indicator": indicator or "", "overdue": overdue or ""}
    spec = COUNT_BY_NAME.get(indicator or "")
    names = dict(_agencies(session))
    return render(
        request,
        "reporting/cases.html",
        {
            **_filter_context(request, session, ctx, f),
            "items": body["items"],
            "total": body["total"],
            "page": page,
            "pages": pages,
            "page_url": lambda number: _url("/coordinator/cases", {**params, "page": str(number)}),
            "indicator_label": spec.label if spec else None,
            "overdue": overdue,
            "agency_names": names,
            "keep": params,
        },
        block="report_body",
    )


# -- audit screens ------------------------------------------------------------------------------
def _audit_context(
    request: Request, session: DbSession, ctx: AppContext, actor: CurrentActor
) -> dict[str, Any]:
    can_review = ctx.policy.can(actor.role, "break_glass.review")
    return {
        "grants": grant_rows(session, pending_only=True) if can_review else [],
        "can_review": can_review,
        "verify": None,
        "reference": "",
        "log": None,
        "log_case": None,
    }


@router.get("/coordinator/audit")
def audit_page(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    require_permission(ctx, actor, "audit.read")
    context = _audit_context(request, session, ctx, actor)
    reference = (request.query_params.get("reference") or "").strip().upper()[:20]
    if reference:
        case = session.scalars(select(Case).where(Case.reference == reference)).one_or_none()
        context["reference"] = reference
        context["log_case"] = case
        context["log"] = access_log(session, case.id) if case is not None else []
    return render(request, "reporting/audit.html", context, block="audit_body")


@router.post("/coordinator/audit/verify")
def verify_page(
    request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx, form: Form
) -> Response:
    require_permission(ctx, actor, "audit.read")
    context = _audit_context(request, session, ctx, actor)
    reference = text(form, "reference", limit=20).upper()
    keys = None
    if reference:
        case_id = session.scalars(select(Case.id).where(Case.reference == reference)).one_or_none()
        if case_id is None:
            raise InvalidInput("no case has this reference")
        keys = [f"case:{case_id}"]
    report = verify_chains(session, keys)
    audit.record(
        session,
        actor,
        "audit_verified",
        details={
            "scope": "case" if keys else "all",
            "chains": report.chains,
            "events": report.events,
            "broken": len(report.broken),
        },
    )
    context["verify"] = report
    return render(request, "reporting/audit.html", context, block="verify_result")


@router.post("/coordinator/audit/break-glass/{grant_id}/review")
def review_page(
    grant_id: uuid.UUID,
    request: Request,
    actor: CurrentActor,
    session: DbSession,
    ctx: Ctx,
    form: Form,
) -> Response:
    require_permission(ctx, actor, "break_glass.review")
    outcome = text(form, "outcome", limit=20)
    break_glass.review(session, ctx, actor, grant_id, outcome)
    return RedirectResponse("/coordinator/audit", status_code=303)
