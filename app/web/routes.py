"""HTML screens (Jinja2 + htmx). Routers of each screen module are included here.

Every screen route is an `HtmlRoute` (app/web/errors.py): its errors are answered as HTML
pages or htmx fragments, never as the API's JSON. Static assets are served from
`frontend/static/` under `/static` (cache-busted URLs come from `static_url`).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.staticfiles import StaticFiles

from app.web import admin, auth_pages, case_pages, coordinator, inbox, registration
from app.web.errors import HtmlRoute
from app.web.templating import STATIC_DIR

router = APIRouter(include_in_schema=False, route_class=HtmlRoute)

router.include_router(auth_pages.router)
# Before the case pages: /cases/new must not be read as /cases/{case_id}.
router.include_router(registration.router)
router.include_router(case_pages.router)
router.include_router(inbox.router)
router.include_router(coordinator.router)
router.include_router(admin.router)
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
