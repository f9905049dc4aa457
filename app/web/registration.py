"""Register a presumed victim: a guided form in five steps, then a duplicate warning.

identity -> circumstances (vulnerability and contact) -> exploitation and detection (with
the indicator checklist) -> consent per purpose and recipient -> review. What was typed in
earlier steps travels as a sealed draft (app/web/drafts.py); nothing is stored before the
final submission, which goes through `service.register` like the API does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from app.auth.actor import Actor
from app.auth.dependencies import CurrentActor
from app.auth.models import UserSession
from app.cases import service
from app.cases.schemas import CaseFields, DetectionIn, RegistrationIn, VictimFields
from app.context import AppContext, Ctx
from app.db.base import utcnow
from app.db.session import DbSession
from app.victims.fields import FIELD_GROUPS
from app.vocab import ConsentPurpose
from app.web import drafts
from app.web.case_pages import parse_consent
from app.web.deps import Form, require_permission, text
from app.web.errors import HtmlRoute, field_error, redirect
from app.web.i18n import N_
from app.web.templating import render, translate

router = APIRouter(route_class=HtmlRoute)

STEPS = ("identity", "circumstances", "exploitation", "consent", "review")
STEP_TITLES = {
    "identity": N_("Identity"),
    "circumstances": N_("Vulnerability and contact"),
    "exploitation": N_("Exploitation and detection"),
    "consent": N_("Consent"),
    "review": N_("Review and register"),
}
PURPOSES = tuple(p.value for p in ConsentPurpose)
CONSENT_PARTS = ("recipient_agency_id", "recipient_description", "given_on", "expires_on")

IDENTITY = (
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
    "document_type",
    "document_number",
    "document_country",
)
CIRCUMSTANCES = (
    "phone",
    "email",
    "current_location",
    "current_address",
    "accommodation",
    "unaccompanied_minor",
    "pregnant",
    "disability",
    "health_notes",
)
EXPLOITATION = (
    "detected_on",
    "detecting_org_type",
    "exploitation_forms",
    "exploitation_acts",
    "exploitation_means",
    "labour_sector",
    "online_exploitation",
    "countries_of_recruitment",
    "countries_of_transit",
    "countries_of_exploitation",
    "exploitation_start",
    "exploitation_end",
    "detection_place",
    "indicators",
    "exploitation_form_details",
    "needs_assessment",
)
CONSENT = tuple(
    name
    for purpose in PURPOSES
    for name in (
        f"consent_{purpose}",
        f"consent_{purpose}_scope",
        *(f"consent_{purpose}_{part}" for part in CONSENT_PARTS),
    )
)
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "identity": IDENTITY,
    "circumstances": CIRCUMSTANCES,
    "exploitation": EXPLOITATION,
    "consent": CONSENT,
    "review": (),
}
LIST_FIELDS = frozenset(
    {
        "nationalities",
        "exploitation_forms",
        "exploitation_acts",
        "exploitation_means",
        "countries_of_recruitment",
        "countries_of_transit",
        "countries_of_exploitation",
        "indicators",
        *(f"consent_{p}_scope" for p in PURPOSES),
    }
)
FLAGS = frozenset(
    {
        "age_uncertain",
        "interpreter_needed",
        "unaccompanied_minor",
        "pregnant",
        "online_exploitation",
        *(f"consent_{p}" for p in PURPOSES),
    }
)
_SPLIT = re.compile(r"[,;\n]+")
_DEFAULT_DETECTOR = {"ngo": "ngo", "police": "police", "social_services": "social_services"}


# -- the draft --------------------------------------------------------------------------------
def read_step(form: FormData, step: str) -> drafts.Draft:
    out: drafts.Draft = {}
    for name in STEP_FIELDS[step]:
        if name in LIST_FIELDS:
            out[name] = [v.strip()[:60] for v in form.getlist(name) if isinstance(v, str) and v]
        elif name in FLAGS:
            out[name] = "on" if form.get(name) == "on" else ""
        else:
            out[name] = text(form, name, limit=5000)
    return out


def _s(draft: Mapping[str, Any], name: str) -> str | None:
    value = draft.get(name)
    return value if isinstance(value, str) and value else None


def _list(draft: Mapping[str, Any], name: str) -> list[str]:
    value = draft.get(name)
    return [v for v in value if v] if isinstance(value, list) else []


def _split(draft: Mapping[str, Any], name: str) -> list[str]:
    return [part.strip() for part in _SPLIT.split(_s(draft, name) or "") if part.strip()]


def victim_payload(draft: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name in ("document_number", "document_country"):
            continue
        if name == "document_type":
            if _s(draft, "document_type"):
                out["documents"] = [
                    {
                        "type": _s(draft, "document_type"),
                        "number": _s(draft, "document_number"),
                        "issuing_country": _s(draft, "document_country"),
                    }
                ]
        elif name in ("aliases", "languages"):
            out[name] = _split(draft, name)
        elif name in LIST_FIELDS:
            out[name] = _list(draft, name)
        elif name in FLAGS:
            out[name] = draft.get(name) == "on"
        elif name == "sex":
            out[name] = _s(draft, name) or "unknown"
        elif _s(draft, name) is not None:
            out[name] = _s(draft, name)
    return out


def case_payload(draft: Mapping[str, Any]) -> dict[str, Any]:
    names = tuple(n for n in EXPLOITATION if n not in ("detected_on", "detecting_org_type"))
    return victim_payload(draft, names)


def detection_payload(draft: Mapping[str, Any]) -> dict[str, Any]:
    values = {
        "detected_on": _s(draft, "detected_on"),
        "detecting_org_type": _s(draft, "detecting_org_type"),
    }
    return {k: v for k, v in values.items() if v is not None}  # empty is "missing"


def consent_values(draft: Mapping[str, Any], purpose: str) -> dict[str, Any]:
    prefix = f"consent_{purpose}_"
    values: dict[str, Any] = {"purpose": purpose, "scope": _list(draft, prefix + "scope")}
    for part in CONSENT_PARTS:
        values[part] = _s(draft, prefix + part) or ""
    return values


def given_consents(draft: Mapping[str, Any]) -> list[str]:
    return [p for p in PURPOSES if draft.get(f"consent_{p}") == "on"]


# -- validation -------------------------------------------------------------------------------
def _field_of(loc: tuple[Any, ...], model_level: str) -> str:
    if not loc:
        return model_level
    head = str(loc[0])
    if head == "documents":
        part = str(loc[2]) if len(loc) > 2 else "type"
        return {"type": "document_type", "number": "document_number"}.get(part, "document_country")
    return head


def _check(
    request: Request,
    model: type[BaseModel],
    payload: Mapping[str, Any],
    errors: dict[str, str],
    model_level: str,
) -> None:
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        for err in exc.errors():
            field = _field_of(tuple(err.get("loc", ())), model_level)
            errors.setdefault(field, translate(request, field_error(err)))


def validate_step(request: Request, step: str, draft: Mapping[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if step in ("identity", "circumstances"):
        _check(request, VictimFields, victim_payload(draft, STEP_FIELDS[step]), errors, "")
        age = _s(draft, "estimated_age")
        if step == "identity" and age and "estimated_age" not in errors and not age.isdigit():
            errors["estimated_age"] = translate(request, N_("Enter a whole number."))
        if (_s(draft, "document_number") or _s(draft, "document_country")) and not _s(
            draft, "document_type"
        ):
            errors["document_type"] = translate(request, N_("Choose the type of document."))
    elif step == "exploitation":
        _check(request, CaseFields, case_payload(draft), errors, "exploitation_end")
        _check(request, DetectionIn, detection_payload(draft), errors, "detected_on")
    elif step == "consent":
        for purpose in given_consents(draft):
            _, _, found = parse_consent(
                request, consent_values(draft, purpose), f"consent_{purpose}_"
            )
            for key, message in found.items():
                errors.setdefault(key, message)
    return errors


def registration_payload(draft: Mapping[str, Any]) -> dict[str, Any]:
    consents = []
    for purpose in given_consents(draft):
        values = consent_values(draft, purpose)
        consents.append(
            {
                "purpose": purpose,
                "recipient_agency_id": values["recipient_agency_id"] or None,
                "recipient_description": values["recipient_description"] or None,
                "scope": values["scope"],
                "given_on": values["given_on"] or None,
                "expires_on": values["expires_on"] or None,
            }
        )
    return {
        "victim": victim_payload(draft, IDENTITY + CIRCUMSTANCES),
        "case": case_payload(draft),
        "detection": detection_payload(draft),
        "consents": consents,
    }


# -- screens ----------------------------------------------------------------------------------
def _render_step(
    request: Request,
    ctx: AppContext,
    user_session: UserSession,
    step: str,
    draft: drafts.Draft,
    *,
    errors: Mapping[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
    agencies: list[Any] | None = None,
) -> Response:
    index = STEPS.index(step)
    review: dict[str, Any] = {}
    if step == "review":
        review = {
            "victim": victim_payload(draft, IDENTITY + CIRCUMSTANCES),
            "case": case_payload(draft),
            "consents": [consent_values(draft, p) for p in given_consents(draft)],
        }
    return render(
        request,
        "cases/new.html",
        {
            "step": step,
            "step_number": index + 1,
            "steps": STEPS,
            "step_titles": STEP_TITLES,
            "values": draft,
            "draft": drafts.seal(ctx, user_session, draft),
            "errors": dict(errors or {}),
            "error": error,
            "purposes": PURPOSES,
            "field_groups": list(FIELD_GROUPS),
            "agencies": agencies or [],
            "agency_names": {str(a.id): a.name for a in agencies or []},
            "review": review,
            "today": utcnow().date().isoformat(),
        },
        status_code=status_code,
    )


def _initial_draft(actor: Actor) -> drafts.Draft:
    today = utcnow().date().isoformat()
    draft: drafts.Draft = {
        "detected_on": today,
        "detecting_org_type": _DEFAULT_DETECTOR.get(actor.agency_type or "", "other"),
        "sex": "unknown",
    }
    for purpose in PURPOSES:
        draft[f"consent_{purpose}_given_on"] = today
    return draft


@router.get("/cases/new")
def new_case(request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx) -> Response:
    require_permission(ctx, actor, "case.create")
    return _render_step(
        request,
        ctx,
        request.state.user_session,
        "identity",
        _initial_draft(actor),
        agencies=service.active_agencies(session),
    )


@router.post("/cases/new")
def new_case_step(
    request: Request, form: Form, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    require_permission(ctx, actor, "case.create")
    user_session: UserSession = request.state.user_session
    agencies = service.active_agencies(session)
    try:
        draft = drafts.open_draft(ctx, user_session, text(form, "draft", limit=200_000))
    except drafts.DraftError:
        message = translate(
            request, N_("Your earlier answers could not be read (or are too old). Start again.")
        )
        return _render_step(
            request,
            ctx,
            user_session,
            "identity",
            _initial_draft(actor),
            error=message,
            status_code=400,
            agencies=agencies,
        )
    step = text(form, "step", limit=20)
    if step not in STEPS:
        step = "identity"
    draft.update(read_step(form, step))
    action = text(form, "action", limit=40)
    index = STEPS.index(step)

    if action == "back":
        return _render_step(
            request, ctx, user_session, STEPS[max(index - 1, 0)], draft, agencies=agencies
        )
    if action.startswith("goto:") and action[5:] in STEPS:
        return _render_step(request, ctx, user_session, action[5:], draft, agencies=agencies)
    if action == "submit" and step == "review":
        for earlier in STEPS[:-1]:
            errors = validate_step(request, earlier, draft)
            if errors:
                return _render_step(
                    request,
                    ctx,
                    user_session,
                    earlier,
                    draft,
                    errors=errors,
                    status_code=422,
                    agencies=agencies,
                )
        data = RegistrationIn.model_validate(registration_payload(draft))
        case = service.register(session, ctx, actor, data)
        return redirect(request, f"/cases/{case.id}/registered")
    errors = validate_step(request, step, draft)
    if errors:
        return _render_step(
            request,
            ctx,
            user_session,
            step,
            draft,
            errors=errors,
            status_code=422,
            agencies=agencies,
        )
    return _render_step(
        request, ctx, user_session, STEPS[min(index + 1, len(STEPS) - 1)], draft, agencies=agencies
    )


@router.get("/cases/{case_id}/registered")
def registered(
    case_id: uuid.UUID, request: Request, actor: CurrentActor, session: DbSession, ctx: Ctx
) -> Response:
    """After registration: the reference, and whether another agency may hold the person."""
    case = service.load_case(session, ctx, actor, case_id)
    service.require(ctx, actor, "case.read")
    matches = (
        service.possible_duplicates(session, ctx, actor, case.id)
        if ctx.policy.can(actor.role, "duplicates.check")
        else []
    )
    return render(request, "cases/registered.html", {"case": case, "matches": matches})
