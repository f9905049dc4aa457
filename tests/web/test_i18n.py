"""English and French screens: negotiation, the switch, and complete, compiled catalogs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.builders import registration
from tests.web.conftest import new_client
from tests.web.pages import assert_accessible_page

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\(\w+\)s")
LOCALE_DIR = REPO / "app" / "locale"


def test_french_pages_when_the_lang_cookie_says_fr(world, web, api) -> None:
    worker = world.user("ngo_caseworker", world.agency("ngo"))
    created = api(worker).post("/api/v1/cases", json=registration()).json()
    me = web(worker)
    me.client.cookies.set("lang", "fr")
    caseload = me.get("/cases")
    assert '<html lang="fr">' in caseload.text
    assert (
        "Dossiers suivis" in caseload.text and "Enregistrer une victime présumée" in caseload.text
    )
    assert_accessible_page(caseload.text)
    page = me.get(f"/cases/{created['id']}")
    for french in (
        "Dossier PSG-",
        "Repéré",
        "Échéances",
        "Données personnelles",
        "Historique",
        "Pourquoi devez-vous voir ces informations ?",
        "Exploitation par le travail",
    ):
        assert french in page.text, french
    for english in ("Personal data", "Deadlines", "Why do you need to see this?"):
        assert english not in page.text
    shown = me.post(
        f"/cases/{created['id']}/reveal",
        {"group": "identity", "purpose": "case_work"},
        headers={"HX-Request": "true"},
    )
    assert "Femme" in shown.text and "Sénégal" in shown.text and "wolof" in shown.text.lower()
    errors = me.post(
        "/cases/new",
        {"draft": "", "step": "identity", "action": "next", "date_of_birth": "2999-01-01"},
    )
    assert "La date ne peut pas être dans le futur." in errors.text


def test_accept_language_sets_the_default_and_the_cookie_wins(app) -> None:
    client = new_client(app)
    french = client.get("/login", headers={"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in french.text and "Se connecter" in french.text
    english = client.get("/login", headers={"Accept-Language": "de-DE, en;q=0.3"})
    assert '<html lang="en">' in english.text and "Sign in" in english.text
    client.cookies.set("lang", "en")
    assert '<html lang="en">' in client.get("/login", headers={"Accept-Language": "fr"}).text


def test_language_switch_sets_the_cookie_and_goes_back_to_a_local_page(app) -> None:
    client = new_client(app)
    switched = client.post("/lang", data={"lang": "fr", "next": "/login"})
    assert switched.status_code == 303 and switched.headers["location"] == "/login"
    assert "lang=fr" in switched.headers["set-cookie"]
    assert "Se connecter" in client.get("/login").text
    for hostile in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        away = client.post("/lang", data={"lang": "en", "next": hostile})
        assert away.headers["location"] == "/"
    unknown = client.post("/lang", data={"lang": "xx", "next": "/login"})
    assert "set-cookie" not in unknown.headers
    cross = client.post("/lang", data={"lang": "fr"}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    page = client.get("/login")
    assert 'name="lang"' in page.text and "data-autosubmit" in page.text
    assert 'action="/lang"' in page.text


def _catalog(lang: str):
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=lang)


def _extracted() -> set[str]:
    with (REPO / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle, str(REPO / "babel.cfg"))
    found = set()
    for _, _, message, _, _ in extract_from_dir(
        str(REPO),
        method_map,
        options_map,
        directory_filter=lambda path: "node_modules" not in path and ".venv" not in path,
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_extracted_string_is_translated_and_the_mo_is_compiled(lang: str) -> None:
    catalog = _catalog(lang)
    translated = {m.id: m.string for m in catalog if m.id}
    missing = sorted(_extracted() - set(translated))
    assert not missing, f"strings not in the {lang} catalog (run pybabel update): {missing[:10]}"
    empty = sorted(i for i, s in translated.items() if not s)
    assert not empty, f"untranslated {lang} strings: {empty[:10]}"
    assert not any("fuzzy" in m.flags for m in catalog if m.id)
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.mo").open("rb") as handle:
        compiled = {m.id: m.string for m in read_mo(handle) if m.id}
    assert compiled == translated, f"{lang} messages.mo is out of date (run pybabel compile)"


def test_french_translations_are_real_and_keep_their_placeholders() -> None:
    translated = {m.id: m.string for m in _catalog("fr") if m.id}
    same = [i for i, s in translated.items() if s == i]
    # A few words are the same in both languages (Passage, Notes, Type, ...), not hundreds.
    assert len(same) < 25, same
    for msgid, text in translated.items():
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(text)), msgid
