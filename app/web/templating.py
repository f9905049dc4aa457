"""Jinja2 for the HTML screens: one environment per locale, fragments for htmx, asset URLs.

- Autoescaping is on for every template; nothing is marked safe that came from a user.
- `jinja2.ext.i18n` with the Babel catalog of the locale (`install_gettext_translations`,
  new-style gettext: `{{ _("Hello %(name)s", name=x) }}` escapes its parameters).
- htmx requests (`HX-Request`) get one block of the page (`jinja2_fragments.render_block`).
- `static_url(name)` gives `/static/<path>?v=<12 hex of the SRI hash>` from manifest.json.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from babel.dates import format_date, format_datetime
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2_fragments import render_block
from starlette.requests import Request
from starlette.responses import HTMLResponse

from app.auth import service as auth
from app.config import REPO_ROOT
from app.context import AppContext
from app.vocab import VOCABULARIES, country_name, is_country_code
from app.web import labels
from app.web.i18n import (
    LANGUAGE_NAMES,
    LOCALES,
    N_,
    babel_locale,
    request_locale,
    translations,
)

TEMPLATES_DIR = REPO_ROOT / "frontend" / "templates"
STATIC_DIR = REPO_ROOT / "frontend" / "static"
MANIFEST = STATIC_DIR / "manifest.json"

# htmx swaps 4xx/5xx answers too: error fragments and forms re-rendered with their errors
# are meant to be shown (htmx 2 does not swap them by default).
HTMX_CONFIG = json.dumps(
    {
        "responseHandling": [
            {"code": "204", "swap": False},
            {"code": "[23]..", "swap": True},
            {"code": "[45]..", "swap": True, "error": True},
            {"code": "...", "swap": False},
        ]
    },
    separators=(",", ":"),
)

_VOCAB_BY_NAME = {cls.__name__: cls for cls in VOCABULARIES}
_FIELD_VOCAB = {
    "sex": "Sex",
    "exploitation_acts": "TraffickingAct",
    "exploitation_means": "TraffickingMeans",
    "labour_sector": "LabourSector",
    "indicators": "Indicator",
    "exploitation_forms": "ExploitationForm",
    "detecting_org_type": "DetectingOrganisationType",
}
_COUNTRY_FIELDS = frozenset(
    {
        "nationalities",
        "countries_of_recruitment",
        "countries_of_transit",
        "countries_of_exploitation",
    }
)
_DATE_FIELDS = frozenset({"date_of_birth", "exploitation_start", "exploitation_end", "detected_on"})


# -- static assets -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def manifest() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return data


def static_url(name: str) -> str:
    entry = manifest()[name]
    digest = base64.b64decode(entry["integrity"].split("-", 1)[1])
    return f"/static/{entry['path']}?v={digest.hex()[:12]}"


def static_integrity(name: str) -> str:
    return manifest()[name]["integrity"]


@lru_cache(maxsize=len(LOCALES))
def _country_choices(locale: str) -> list[tuple[str, str]]:
    names = babel_locale(locale).territories
    out = []
    for key, name in names.items():
        code = str(key)
        if len(code) == 2 and code.isalpha() and is_country_code(code):
            out.append((code, str(name)))
    return sorted(out, key=lambda item: item[1].casefold())


# -- helpers bound to a locale ----------------------------------------------------------------
def _helpers(locale: str) -> dict[str, Any]:
    tr = translations(locale)
    babel = babel_locale(locale)

    def t(text: str | None) -> str:
        return tr.gettext(text) if text else ""

    def from_table(table: Mapping[str, str]) -> Callable[[str | None], str]:
        def lookup(code: str | None) -> str:
            if code is None:
                return ""
            text = table.get(code)
            return tr.gettext(text) if text else code.replace("_", " ")

        return lookup

    def vocab(vocabulary: str, value: str | None) -> str:
        if value is None or value == "":
            return ""
        cls = _VOCAB_BY_NAME[vocabulary]
        try:
            return tr.gettext(cls(value).label)
        except ValueError:
            return value.replace("_", " ")

    def vocab_choices(vocabulary: str) -> list[tuple[str, str]]:
        cls = _VOCAB_BY_NAME[vocabulary]
        return [(member.value, tr.gettext(member.label)) for member in cls]

    def country(code: str | None) -> str:
        if not code:
            return ""
        try:
            return country_name(code, locale)
        except ValueError:
            return code

    def country_choices() -> list[tuple[str, str]]:
        return _country_choices(locale)

    def language(code: str | None) -> str:
        if not code:
            return ""
        return str(babel.languages.get(code, code))

    def fmt_date(value: date | datetime | None) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            value = value.astimezone(UTC).date()
        return format_date(value, format="medium", locale=babel)

    def fmt_datetime(value: datetime | None) -> str:
        if value is None:
            return ""
        return format_datetime(value, format="medium", tzinfo=UTC, locale=babel) + " UTC"

    def field_value(name: str, value: Any) -> str:
        """A revealed personal value as text (escaped by the template like any value)."""
        if value is None or value == "" or value == []:
            return t(N_("Not recorded"))
        if isinstance(value, bool):
            return t(N_("Yes")) if value else t(N_("No"))
        items = value if isinstance(value, list) else [value]
        if name in _FIELD_VOCAB:
            return ", ".join(vocab(_FIELD_VOCAB[name], str(v)) for v in items)
        if name in _COUNTRY_FIELDS:
            return ", ".join(country(str(v)) for v in items)
        if name == "languages":
            return ", ".join(language(str(v)) for v in items)
        if name in _DATE_FIELDS and isinstance(value, str):
            try:
                return fmt_date(date.fromisoformat(value))
            except ValueError:
                return value
        if name == "documents":
            parts = []
            for doc in items:
                if not isinstance(doc, dict):
                    continue
                piece = vocab("DocumentType", str(doc.get("type") or ""))
                if doc.get("number"):
                    piece += " " + str(doc["number"])
                if doc.get("issuing_country"):
                    piece += " (" + country(str(doc["issuing_country"])) + ")"
                parts.append(piece)
            return "; ".join(parts)
        return ", ".join(str(v) for v in items)

    return {
        "t": t,
        "field_value": field_value,
        "stage_label": from_table(labels.STAGES),
        "event_label": from_table(labels.EVENTS),
        "deadline_label": from_table(labels.DEADLINE_KINDS),
        "deadline_status": from_table(labels.DEADLINE_STATUSES),
        "action_label": from_table(labels.AUDIT_ACTIONS),
        "field_label": from_table(labels.FIELDS),
        "group_label": from_table(labels.FIELD_GROUPS),
        "purpose_label": from_table(labels.READ_PURPOSES),
        "assessment_label": from_table(labels.ASSESSMENTS),
        "note_kind_label": from_table(labels.NOTE_KINDS),
        "proceedings_status_label": from_table(labels.PROCEEDINGS_STATUSES),
        "proceedings_event_label": from_table(labels.PROCEEDINGS_EVENTS),
        "permit_status_label": from_table(labels.PERMIT_STATUSES),
        "permit_event_label": from_table(labels.PERMIT_EVENTS),
        "index_label": from_table(labels.DUPLICATE_INDEXES),
        "vocab": vocab,
        "vocab_choices": vocab_choices,
        "country_choices": country_choices,
        "country": country,
        "language": language,
        "fmt_date": fmt_date,
        "fmt_datetime": fmt_datetime,
    }


def _build(locale: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(_helpers(locale))
    env.globals.update(
        static_url=static_url,
        static_integrity=static_integrity,
        badge_class=labels.DEADLINE_BADGES,
        locales=[(code, LANGUAGE_NAMES[code]) for code in LOCALES],
        htmx_config=HTMX_CONFIG,
        locale=locale,
    )
    return env


@lru_cache(maxsize=len(LOCALES))
def environment(locale: str) -> Environment:
    return _build(locale)


def translate(request: Request, message: str, **params: Any) -> str:
    text = translations(request_locale(request)).gettext(message)
    return text % params if params else text


# -- requests ---------------------------------------------------------------------------------
def is_htmx(request: Request) -> bool:
    """An htmx partial request (boosted navigations get the whole page)."""
    return request.headers.get("hx-request") == "true" and request.headers.get("hx-boosted") is None


def safe_next(value: str | None, default: str = "/") -> str:
    """A local path to go back to; anything else (other hosts, schemes, //x) is refused."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return parts.path or default


def _nav(ctx: AppContext, role: str | None) -> list[tuple[str, str]]:
    if role is None:
        return []
    policy = ctx.policy
    items: list[tuple[str, str]] = []
    if role == "police_officer":
        items.append(("/inbox", N_("Decision inbox")))
    if role == "coordinator":
        items.append(("/coordinator", N_("Coordination")))
    if role == "admin":
        items.append(("/admin/users", N_("Users")))
        items.append(("/admin/agencies", N_("Agencies")))
    if policy.can(role, "case.read") and role != "coordinator":
        items.append(("/cases", N_("My child cases") if role == "guardian" else N_("Cases")))
    if policy.can(role, "case.create"):
        items.append(("/cases/new", N_("Register a presumed victim")))
    return items


def base_context(request: Request) -> dict[str, Any]:
    ctx: AppContext = request.app.state.context
    user = getattr(request.state, "user", None)
    user_session = getattr(request.state, "user_session", None)
    actor = getattr(request.state, "actor", None)
    signed_in = (
        user is not None
        and actor is not None
        and user_session is not None
        and user_session.mfa_completed
        and user_session.revoked_at is None
    )
    # Before the second factor, no menu: only the sign-in screens are reachable.
    role: str | None = user.role if signed_in and user is not None else None
    csrf = ""
    if user_session is not None and user_session.revoked_at is None:
        csrf = auth.csrf_token(ctx, user_session)

    def can(permission: str) -> bool:
        return role is not None and ctx.policy.can(role, permission)

    return {
        "request": request,
        "current_path": request.url.path,
        "user": user if role is not None else None,
        "role": role,
        "actor": actor,
        "csrf_token": csrf,
        "can": can,
        "nav": _nav(ctx, role),
        "errors": {},
        "values": {},
        "notice": None,
        "error_notice": None,
    }


def render_html(request: Request, template: str, context: Mapping[str, Any]) -> str:
    env = environment(request_locale(request))
    data = {**base_context(request), **context}
    return env.get_template(template).render(data)


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    block: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The page, or only `block` of it when htmx asks for a partial update."""
    env = environment(request_locale(request))
    data = {**base_context(request), **(context or {})}
    if block is not None and is_htmx(request):
        html = render_block(env, template, block, data)
    else:
        html = env.get_template(template).render(data)
    response = HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
    response.headers["Vary"] = "HX-Request, Cookie, Accept-Language"
    return response


def template_path(name: str) -> Path:
    return TEMPLATES_DIR / name
