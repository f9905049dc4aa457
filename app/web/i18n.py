"""Locales for the HTML screens: negotiation, compiled catalogs and message extraction.

The locale of a request comes from the `lang` cookie (set by the language switch), else from
`Accept-Language`, else English. Catalogs live in `app/locale/<lang>/LC_MESSAGES/messages.mo`
(built with `pybabel compile`, see `babel.cfg`). Strings defined in Python are marked with
`N_()` so `pybabel extract` finds them, and translated where they are shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.support import NullTranslations, Translations
from starlette.requests import Request

LOCALES = ("en", "fr")
DEFAULT_LOCALE = "en"
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}
LANG_COOKIE = "lang"
DOMAIN = "messages"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated later, where it is shown."""
    return message


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> NullTranslations:
    if locale not in LOCALES:
        locale = DEFAULT_LOCALE
    loaded = Translations.load(str(LOCALE_DIR), [locale], DOMAIN)
    return loaded


def gettext(locale: str, message: str, **params: Any) -> str:
    text = translations(locale).gettext(message)
    return text % params if params else text


def _accept_language(header: str) -> list[str]:
    """Language tags from an Accept-Language header, best first (q=0 dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        if quality > 0:
            weighted.append((-quality, position, tag.strip().lower()))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LOCALES:
        return str(cookie)
    for tag in _accept_language(accept_language or ""):
        primary = tag.replace("_", "-").split("-")[0]
        if primary in LOCALES:
            return primary
    return DEFAULT_LOCALE


def request_locale(request: Request) -> str:
    cached = getattr(request.state, "locale", None)
    if isinstance(cached, str):
        return cached
    locale = negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    request.state.locale = locale
    return locale


@lru_cache(maxsize=len(LOCALES))
def babel_locale(locale: str) -> Locale:
    try:
        return Locale.parse(locale)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LOCALE)


# -- extraction -------------------------------------------------------------------------------
def extract_vocab(
    fileobj: Any, keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel extractor for app/vocab.py: every English label of every vocabulary.

    The labels live in data tables, not in gettext calls, so the default Python extractor
    cannot see them. Declared in babel.cfg as `[app.web.i18n.extract_vocab: app/vocab.py]`.
    """
    del fileobj, keywords, comment_tags, options
    from app.vocab import LABELS

    seen: set[str] = set()
    for vocabulary, table in LABELS.items():
        for member, text in table.items():
            if text in seen:
                continue
            seen.add(text)
            yield 1, "gettext", text, [f"{vocabulary.__name__}.{member.value}"]
