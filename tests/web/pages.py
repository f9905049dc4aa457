"""Reading rendered pages in tests: forms, links, labels, headings (standard library only)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VERSION = re.compile(r'name="version" value="(\d+)"')
DRAFT = re.compile(r'name="draft" value="([^"]+)"')


def version_of(page: str) -> str:
    match = VERSION.search(page)
    assert match, "no case version on the page"
    return match.group(1)


def draft_of(page: str) -> str:
    match = DRAFT.search(page)
    assert match, "no draft on the page"
    return match.group(1)


@dataclass
class PageFacts:
    lang: str | None = None
    links: list[str] = field(default_factory=list)
    headings: list[int] = field(default_factory=list)
    controls: list[tuple[str, str | None, bool]] = field(default_factory=list)  # tag, id, wrapped
    label_fors: set[str] = field(default_factory=set)
    ids: list[str] = field(default_factory=list)
    inline_scripts: int = 0
    style_attributes: int = 0
    event_handlers: int = 0
    skip_link: bool = False
    main: bool = False


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.facts = PageFacts()
        self._label_depth = 0
        self._script_has_src = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        f = self.facts
        if a.get("id"):
            f.ids.append(str(a["id"]))
        if "style" in a:
            f.style_attributes += 1
        if any(name.startswith("on") for name in a):
            f.event_handlers += 1
        if tag == "html":
            f.lang = a.get("lang")
        elif tag == "a" and a.get("href"):
            f.links.append(str(a["href"]))
            if "skip-link" in (a.get("class") or "") and a.get("href") == "#main":
                f.skip_link = True
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            f.headings.append(int(tag[1]))
        elif tag == "label":
            self._label_depth += 1
            if a.get("for"):
                f.label_fors.add(str(a["for"]))
        elif tag in ("input", "select", "textarea"):
            if tag == "input" and a.get("type") in ("hidden", "submit", "button"):
                return
            f.controls.append((tag, a.get("id"), self._label_depth > 0))
        elif tag == "script":
            self._in_script = True
            if not a.get("src"):
                f.inline_scripts += 1
        elif tag == "main" and a.get("id") == "main":
            f.main = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_depth = max(0, self._label_depth - 1)
        elif tag == "script":
            self._in_script = False


def facts(page: str) -> PageFacts:
    parser = _Parser()
    parser.feed(page)
    return parser.facts


def assert_accessible_page(page: str) -> None:
    """The page-level rules every screen follows (WCAG basics we can check statically)."""
    f = facts(page)
    assert f.lang in ("en", "fr"), "html lang attribute"
    assert f.skip_link and f.main, "skip link to #main"
    assert f.headings and f.headings[0] == 1 and f.headings.count(1) == 1, f.headings
    for before, after in zip(f.headings, f.headings[1:], strict=False):
        assert after <= before + 1, f"heading level jumps from h{before} to h{after}"
    unlabelled = [
        (tag, ident)
        for tag, ident, wrapped in f.controls
        if not wrapped and (ident is None or ident not in f.label_fors)
    ]
    assert not unlabelled, f"controls without a label: {unlabelled}"
    duplicates = {i for i in f.ids if f.ids.count(i) > 1}
    assert not duplicates, f"duplicate ids: {duplicates}"
    assert f.inline_scripts == 0 and f.style_attributes == 0 and f.event_handlers == 0
