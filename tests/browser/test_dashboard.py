"""The coordinator dashboard in real Chromium: charts drawn, filters kept in the URL,
drill-down from a chart bar to the pseudonymised cases behind it."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app.demo import load_demo_data
from tests.browser.conftest import Server, snap
from tests.browser.test_screens import complete_totp_enrolment, sign_in

pytestmark = pytest.mark.browser


def test_dashboard_draws_its_charts_and_keeps_filters_in_the_url(page: Any, server: Server) -> None:
    live = server.live
    with live.session() as session, session.begin():
        load_demo_data(session, live.ctx, cases=80, seed=11, bulk=True)
    coordinator, _ = live.user("coordinator", "coordinator_office")
    sign_in(page, coordinator.username)
    complete_totp_enrolment(page)
    page.wait_for_url("**/coordinator")

    page.goto("/coordinator/dashboard")
    funnel = page.locator("svg.funnel").first
    funnel.wait_for(state="visible")
    box = funnel.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    # Bars are drawn to scale: the first step (every episode) is the widest, and at least
    # the first few steps are visibly non-empty.
    widths = [
        float(w)
        for w in page.locator("svg.funnel")
        .first.locator("rect.funnel-bar")
        .evaluate_all("bars => bars.map(b => b.getBBox().width)")
    ]
    assert len(widths) >= 5 and widths[0] == max(widths) and widths[0] > 100
    assert all(w > 0 for w in widths[:3])
    assert page.locator("rect.funnel-bar").first.is_visible()
    # The chart is an image with an accessible name (its SVG title).
    assert page.get_by_role("img", name="Episodes that reached each step").is_visible()
    episodes = int(
        page.locator("svg.funnel").first.locator("text.funnel-value").first.text_content() or ""
    )
    assert episodes == 80
    snap(page, "coordinator-dashboard")

    # Filters go through htmx, which swaps the report body and pushes the filtered URL.
    page.locator("details summary", has_text="Filters").click()
    page.get_by_label("Sex", exact=True).select_option("female")
    page.get_by_role("button", name="Apply the filters").click()
    page.wait_for_url("**/coordinator/dashboard?*sex=female*")
    assert parse_qs(urlsplit(page.url).query)["sex"] == ["female"]
    filtered = page.locator("svg.funnel").first.locator("text.funnel-value").first
    page.wait_for_function(
        "n => Number(document.querySelector('svg.funnel text.funnel-value').textContent) < n",
        arg=episodes,
    )
    women = int(filtered.text_content() or "")
    assert 0 < women < episodes
    # Reloading the URL restores the same state: the form and the figures.
    page.reload()
    assert page.get_by_label("Sex", exact=True).input_value() == "female"
    assert int(page.locator("svg.funnel text.funnel-value").first.text_content() or "") == women

    # The links of the swapped body carry the filters too (htmx swap, no reload).
    page.get_by_label("Age band").select_option("adult")
    page.get_by_role("button", name="Apply the filters").click()
    page.wait_for_url("**/coordinator/dashboard?*age_band=adult*")
    overdue_link = page.get_by_role("link", name="Overdue deadlines").first
    assert "age_band=adult" in (overdue_link.get_attribute("href") or "")

    # A bar of the funnel opens the pseudonymised references behind it, filters kept.
    bar = page.locator("svg.funnel a").filter(has=page.locator("rect.funnel-bar")).first
    bar.wait_for(state="visible")
    count = int(bar.locator("text.funnel-value").text_content() or "")
    bar.click()
    page.wait_for_url("**/coordinator/cases?*")
    query = parse_qs(urlsplit(page.url).query)
    assert query["sex"] == ["female"] and query["age_band"] == ["adult"] and query["indicator"]
    assert page.locator("#report-body strong").first.inner_text() == str(count)
    assert page.locator("#report-body tbody tr").count() == min(count, 50)
    snap(page, "coordinator-drill-down")
    assert page.console_errors == []
