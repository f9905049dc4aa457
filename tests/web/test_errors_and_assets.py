"""Error pages and fragments, the static assets, and the markup rules of every template."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from fastapi.testclient import TestClient

from app.web.templating import manifest, static_url
from tests.builders import registration
from tests.web.conftest import ORIGIN

TEMPLATES = Path(__file__).resolve().parents[2] / "frontend" / "templates"
CANARY = "Errorcanaryvalue"


def test_domain_errors_are_html_pages_or_htmx_fragments(world, web) -> None:
    me = web(world.user("ngo_caseworker", world.agency("ngo")))
    page = me.get("/cases/01234567-89ab-7def-8123-456789abcdef")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Page not found" in page.text and "<h1>" in page.text
    fragment = me.get("/cases/01234567-89ab-7def-8123-456789abcdef", headers={"HX-Request": "true"})
    assert fragment.status_code == 404
    assert fragment.headers["HX-Retarget"] == "#messages"
    assert "<html" not in fragment.text and "notice-error" in fragment.text
    # The API keeps answering JSON.
    api_missing = me.get("/api/v1/cases/01234567-89ab-7def-8123-456789abcdef")
    assert api_missing.headers["content-type"].startswith("application/json")


def test_unexpected_errors_show_a_page_without_the_exception_text(
    world, web, app, caplog, monkeypatch
) -> None:
    from app.cases import service

    def boom(*args, **kwargs):
        raise ValueError(f"value was {CANARY}")

    me = web(world.user("ngo_caseworker", world.agency("ngo")))
    monkeypatch.setattr(service, "list_cases", boom)
    caplog.set_level(logging.INFO)
    response = me.get("/cases")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert CANARY not in response.text and CANARY not in caplog.text
    assert "ValueError" in caplog.text


def test_submitted_values_are_not_echoed_in_error_pages(world, web, api, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    worker = world.user("ngo_caseworker", world.agency("ngo"))
    created = api(worker).post("/api/v1/cases", json=registration()).json()
    me = web(worker)
    url = f"/cases/{created['id']}"
    # A bad form for a stale case: the page comes back with an error, not the value elsewhere.
    stale = me.post(url + "/accommodation", {"accommodation": CANARY, "version": "999"})
    assert stale.status_code == 409
    assert stale.text.count(CANARY) == 1 and f'value="{CANARY}"' in stale.text
    csrf = me.client.post(url + "/notes", data={"kind": "note", "body": CANARY})
    assert csrf.status_code == 403 and CANARY not in csrf.text
    bad_event = me.post(url + "/transition", {"event": "not_an_event", "reason": CANARY})
    assert bad_event.status_code == 404 and CANARY not in bad_event.text
    assert CANARY not in caplog.text


def test_static_assets_are_served_with_cache_busting_urls(app) -> None:
    client = TestClient(app, base_url=ORIGIN)
    for name, entry in manifest().items():
        url = static_url(name)
        assert url.startswith(f"/static/{entry['path']}?v=") and len(url.split("?v=")[1]) == 12
        response = client.get(url)
        assert response.status_code == 200, url
        assert "max-age" in response.headers["cache-control"]
    page = client.get("/login")
    for name in manifest():
        assert static_url(name) in page.text
    assert 'integrity="sha384-' in page.text
    assert client.get("/static/../app/config.py").status_code == 404


def test_templates_have_no_inline_script_style_or_handlers() -> None:
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert "<style" not in text and " style=" not in text, path
        assert not re.search(r"\son[a-z]+\s*=", text), path
        assert "hx-on" not in text and "javascript:" not in text, path
        assert "|safe" not in text.replace(" ", "") and "Markup(" not in text, path
