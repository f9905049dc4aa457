"""Deadline computation and working-day arithmetic. Expected dates are worked out by hand
(the comments show the counting); none is computed with the code under test."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cases.deadlines import (
    Deadline,
    DeadlineKind,
    Milestones,
    WorkingDayCalendar,
    calendar_for,
    compute_deadlines,
    working_day_calendar,
)
from app.policies.countries import DEFAULT_PROFILE_DIR, CalendarSpec, CountryProfile
from app.policies.countries import load_country_profiles as _load

LONDON = ZoneInfo("Europe/London")
LISBON = ZoneInfo("Europe/Lisbon")
NIAMEY = ZoneInfo("Africa/Niamey")
K = DeadlineKind


@cache
def profiles() -> dict[str, CountryProfile]:
    return _load(DEFAULT_PROFILE_DIR)


def profile(code: str) -> CountryProfile:
    return profiles()[code]


def end_of(y: int, mo: int, d: int, tz: ZoneInfo) -> datetime:
    return datetime(y, mo, d, 23, 59, 59, 999999, tzinfo=tz)


def london(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=LONDON)


def by_kind(deadlines: list[Deadline]) -> dict[DeadlineKind, Deadline]:
    result = {d.kind: d for d in deadlines}
    assert len(result) == len(deadlines), "unexpected duplicate kinds"
    return result


# --------------------------------------------------------------------------- working days


def test_uk_bank_holidays_and_weekends_are_not_working_days() -> None:
    cal = calendar_for(profile("uk"))
    assert cal.is_working_day(date(2026, 12, 24))  # Thursday
    assert not cal.is_working_day(date(2026, 12, 25))  # Christmas Day, Friday
    assert not cal.is_working_day(date(2026, 12, 26))  # Saturday (Boxing Day)
    assert not cal.is_working_day(date(2026, 12, 27))  # Sunday
    assert not cal.is_working_day(date(2026, 12, 28))  # Boxing Day (substitute day)
    assert cal.is_working_day(date(2026, 12, 29))
    assert not cal.is_working_day(date(2026, 8, 31))  # Summer bank holiday (England)


def test_uk_add_working_days_over_weekend_and_christmas() -> None:
    cal = calendar_for(profile("uk"))
    friday = date(2026, 12, 18)
    # Mon 21 (1), Tue 22 (2), Wed 23 (3), Thu 24 (4), [Fri 25, Sat 26, Sun 27, Mon 28],
    # Tue 29 (5)
    assert cal.add_working_days(friday, 1) == date(2026, 12, 21)
    assert cal.add_working_days(friday, 4) == date(2026, 12, 24)
    assert cal.add_working_days(friday, 5) == date(2026, 12, 29)
    assert cal.add_working_days(friday, 0) == friday
    assert cal.add_working_days(date(2026, 12, 24), 1) == date(2026, 12, 29)
    # counting starts the next working day even when the start is not one
    assert cal.add_working_days(date(2026, 12, 26), 1) == date(2026, 12, 29)


def test_working_days_between() -> None:
    cal = calendar_for(profile("uk"))
    assert cal.working_days_between(date(2026, 12, 18), date(2026, 12, 29)) == 5
    assert cal.working_days_between(date(2026, 12, 29), date(2026, 12, 18)) == -5
    assert cal.working_days_between(date(2026, 12, 24), date(2026, 12, 28)) == 0
    assert cal.working_days_between(date(2026, 12, 24), date(2026, 12, 24)) == 0
    # a whole year: 2026 has 261 Mon-Fri days, 8 of them English bank holidays
    # (1 Jan, 3 Apr, 6 Apr, 4 May, 25 May, 31 Aug, 25 Dec, 28 Dec)
    assert cal.working_days_between(date(2025, 12, 31), date(2026, 12, 31)) == 253


def test_negative_working_days_are_refused() -> None:
    with pytest.raises(ValueError, match="n must be >= 0"):
        calendar_for(profile("uk")).add_working_days(date(2026, 1, 1), -1)


def test_extra_holidays_and_no_holiday_country() -> None:
    spec = CalendarSpec(weekend=(6, 7), extra_holidays=(date(2026, 12, 24),), timezone="UTC")
    cal = WorkingDayCalendar(spec)
    assert not cal.is_working_day(date(2026, 12, 24))
    assert cal.is_working_day(date(2026, 12, 25))  # no public holidays in this calendar
    # Mon 21, Tue 22, Wed 23, [Thu 24], Fri 25, [Sat, Sun], Mon 28
    assert cal.add_working_days(date(2026, 12, 18), 5) == date(2026, 12, 28)


def test_other_weekends() -> None:
    friday_saturday = WorkingDayCalendar(CalendarSpec(weekend=(5, 6), timezone="UTC"))
    # Thursday 17 Dec 2026 + 1 -> Sunday 20 Dec (Fri 18 and Sat 19 are the weekend)
    assert friday_saturday.add_working_days(date(2026, 12, 17), 1) == date(2026, 12, 20)
    every_day = WorkingDayCalendar(CalendarSpec(weekend=(), timezone="UTC"))
    assert every_day.add_working_days(date(2026, 1, 1), 1000) == date(2028, 9, 27)
    # every day counts: 1 Jan 2026 + 730 days = 1 Jan 2028; + 270 more = day 271 of 2028,
    # and Jan..Aug 2028 (leap year) have 244 days, so day 271 is 27 September 2028.
    mon_fri = WorkingDayCalendar(CalendarSpec(weekend=(6, 7), timezone="UTC"))
    # Mon 5 Jan 2026 + 10: Tue 6 .. Fri 9 (4), Mon 12 .. Fri 16 (9), Mon 19 (10)
    assert mon_fri.add_working_days(date(2026, 1, 5), 10) == date(2026, 1, 19)


def test_niger_calendar() -> None:
    cal = calendar_for(profile("ne"))
    assert not cal.is_working_day(date(2026, 12, 18))  # Niger National Day
    assert not cal.is_working_day(date(2026, 12, 19))  # Saturday
    assert cal.is_working_day(date(2026, 12, 21))


def test_calendars_are_cached_and_shared() -> None:
    uk = profile("uk")
    assert calendar_for(uk) is calendar_for(uk)
    same_spec = CalendarSpec.model_validate(uk.calendar.model_dump())
    assert working_day_calendar(same_spec) is calendar_for(uk)


SHIPPED_CODES = ["uk", "pt", "ne", "coe_default"]


@settings(max_examples=300, deadline=None)
@given(
    code=st.sampled_from(SHIPPED_CODES),
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2075, 12, 31)),
    n=st.integers(min_value=0, max_value=400),
)
def test_add_working_days_properties(code: str, start: date, n: int) -> None:
    cal = calendar_for(profile(code))
    result = cal.add_working_days(start, n)
    assert cal.working_days_between(start, result) == n
    if n == 0:
        assert result == start
        return
    assert result > start
    assert cal.is_working_day(result)
    # it is the first day that reaches n: the day before is still one short
    assert cal.working_days_between(start, result - timedelta(days=1)) == n - 1


# --------------------------------------------------------------------------- deadlines


REFERRAL_FRIDAY = Milestones(
    detected_at=london(2026, 12, 17, 16),
    referred_at=london(2026, 12, 18, 10),
)


def test_no_milestones_no_deadlines() -> None:
    assert compute_deadlines(profile("uk"), Milestones()) == []


def test_only_detected() -> None:
    (referral,) = compute_deadlines(profile("uk"), Milestones(detected_at=london(2026, 3, 2, 9)))
    assert referral.kind is K.REFERRAL
    assert referral.due_at == end_of(2026, 3, 3, LONDON)  # 1 calendar day
    assert referral.met_at is None
    assert referral.label_key == "deadline.referral"


def test_referred_awaiting_reasonable_grounds() -> None:
    deadlines = compute_deadlines(profile("uk"), REFERRAL_FRIDAY)
    assert [d.kind for d in deadlines] == [K.REFERRAL, K.REASONABLE_GROUNDS_DECISION]
    referral, rg = deadlines
    assert referral.due_at == end_of(2026, 12, 18, LONDON)
    assert referral.met_at == london(2026, 12, 18, 10)
    assert not referral.met_late
    assert rg.due_at == end_of(2026, 12, 29, LONDON)  # see the working-day test above
    assert rg.met_at is None
    assert rg.basis == "MSA 2015 s.49 guidance: RG decision target 5 working days"
    assert rg.status(london(2026, 12, 21, 9)) == "pending"
    assert rg.status(london(2026, 12, 30, 0)) == "overdue"


def test_same_milestones_differ_between_profiles() -> None:
    due = {
        code: by_kind(compute_deadlines(profile(code), REFERRAL_FRIDAY))[
            K.REASONABLE_GROUNDS_DECISION
        ].due_at
        for code in ("uk", "coe_default", "pt", "ne")
    }
    assert due["uk"] == end_of(2026, 12, 29, LONDON)
    # no public holidays, UTC: Mon 21 .. Fri 25
    assert due["coe_default"] == end_of(2026, 12, 25, ZoneInfo("UTC"))
    # Portugal: 25 Dec is a holiday, 28 Dec is not: Mon 21 .. Thu 24 (4), Mon 28 (5)
    assert due["pt"] == end_of(2026, 12, 28, LISBON)
    # Niger: 25 Dec (Christmas) is a holiday: Mon 21 .. Thu 24 (4), Mon 28 (5)
    assert due["ne"] == end_of(2026, 12, 28, NIAMEY)


def test_local_day_of_the_profile_timezone_is_used() -> None:
    # Sunday 5 July 2026 23:30 UTC is already Monday 6 July 00:30 in London (BST).
    m = Milestones(referred_at=datetime(2026, 7, 5, 23, 30, tzinfo=UTC))
    uk = by_kind(compute_deadlines(profile("uk"), m))[K.REASONABLE_GROUNDS_DECISION]
    # from Monday 6: Tue 7, Wed 8, Thu 9, Fri 10, Mon 13
    assert uk.due_at == end_of(2026, 7, 13, LONDON)
    coe = by_kind(compute_deadlines(profile("coe_default"), m))[K.REASONABLE_GROUNDS_DECISION]
    # from Sunday 5 (UTC): Mon 6 .. Fri 10
    assert coe.due_at == end_of(2026, 7, 10, ZoneInfo("UTC"))


def test_positive_reasonable_grounds_in_uk() -> None:
    rg_at = london(2026, 1, 10, 10)
    m = Milestones(
        detected_at=london(2026, 1, 2, 9),
        referred_at=london(2026, 1, 5, 9),
        reasonable_grounds_at=rg_at,
    )
    d = by_kind(compute_deadlines(profile("uk"), m))
    assert set(d) == {
        K.REFERRAL,
        K.REASONABLE_GROUNDS_DECISION,
        K.FIRST_SUPPORT_CONTACT,
        K.REFLECTION_MINIMUM_END,
        K.IDENTIFICATION_DECISION,
    }
    # referral due end of 3 Jan, made on 5 Jan: met late
    assert d[K.REFERRAL].met_late
    assert d[K.REFERRAL].status(london(2026, 2, 1)) == "met"
    # RG: Mon 5 Jan + 5 working days = Mon 12 Jan; decided Sat 10 Jan: on time
    assert d[K.REASONABLE_GROUNDS_DECISION].due_at == end_of(2026, 1, 12, LONDON)
    assert d[K.REASONABLE_GROUNDS_DECISION].met_at == rg_at
    assert not d[K.REASONABLE_GROUNDS_DECISION].met_late
    assert d[K.FIRST_SUPPORT_CONTACT].due_at == london(2026, 1, 12, 10)  # +48 h
    # 30 days after 10 Jan: 9 Feb
    assert d[K.REFLECTION_MINIMUM_END].due_at == end_of(2026, 2, 9, LONDON)
    assert d[K.REFLECTION_MINIMUM_END].elapses
    # 90 days after 10 Jan: 21 left in Jan, 28 in Feb (49), 31 in Mar (80), 10 Apr (90)
    ident = d[K.IDENTIFICATION_DECISION]
    assert ident.due_at == end_of(2026, 4, 10, LONDON)
    assert ident.not_before == london(2026, 2, 10)
    assert ident.met_at is None
    assert ident.basis.startswith("MSA 2015 s.49 guidance: CG decision no sooner than 30 days")


def test_identification_during_reflection_is_met_early() -> None:
    base = Milestones(
        referred_at=london(2026, 1, 5, 9), reasonable_grounds_at=london(2026, 1, 10, 10)
    )
    # reflection runs to the end of 9 Feb; identification is allowed from 10 Feb
    early = replace(
        base, identification_decided_at=london(2026, 2, 9, 15), identification_positive=True
    )
    ok = replace(
        base, identification_decided_at=london(2026, 2, 10, 9), identification_positive=True
    )
    early_d = by_kind(compute_deadlines(profile("uk"), early))[K.IDENTIFICATION_DECISION]
    ok_d = by_kind(compute_deadlines(profile("uk"), ok))[K.IDENTIFICATION_DECISION]
    assert early_d.met_early and not early_d.met_late
    assert not ok_d.met_early
    assert early_d.status(london(2026, 3, 1)) == "met"
    # Portugal does not gate identification on the reflection period
    pt = by_kind(compute_deadlines(profile("pt"), early))[K.IDENTIFICATION_DECISION]
    assert pt.not_before is None
    assert not pt.met_early


def test_first_support_contact_counts_real_hours_across_dst() -> None:
    # Clocks go forward in the UK at 01:00 UTC on Sunday 29 March 2026.
    m = Milestones(reasonable_grounds_at=london(2026, 3, 28, 12))  # 12:00 GMT = 12:00 UTC
    contact = by_kind(compute_deadlines(profile("uk"), m))[K.FIRST_SUPPORT_CONTACT]
    assert contact.due_at == datetime(2026, 3, 30, 12, 0, tzinfo=UTC)
    assert contact.due_at == london(2026, 3, 30, 13)  # 13:00 BST
    # it is due soon from the moment it starts (48 h < 3 days) and overdue after
    assert contact.status(london(2026, 3, 28, 12)) == "due_soon"
    assert contact.status(london(2026, 3, 30, 13, 1)) == "overdue"


def test_first_contact_met_late() -> None:
    m = Milestones(
        reasonable_grounds_at=london(2026, 5, 4, 9),
        first_support_contact_at=london(2026, 5, 7, 9),
    )
    contact = by_kind(compute_deadlines(profile("uk"), m))[K.FIRST_SUPPORT_CONTACT]
    assert contact.due_at == london(2026, 5, 6, 9)
    assert contact.met_late
    assert contact.status(london(2026, 5, 8)) == "met"
    # before it was met it was overdue
    assert contact.status(london(2026, 5, 6, 10)) == "overdue"


def test_negative_reasonable_grounds() -> None:
    m = Milestones(referred_at=london(2026, 1, 2, 9), not_identified_at=london(2026, 1, 5, 11))
    d = by_kind(compute_deadlines(profile("uk"), m))
    assert set(d) == {
        K.REASONABLE_GROUNDS_DECISION,
        K.RECONSIDERATION_WINDOW_END,
        K.MOVE_ON_END,
    }
    # Fri 2 Jan + 5 working days: Mon 5 .. Fri 9
    assert d[K.REASONABLE_GROUNDS_DECISION].due_at == end_of(2026, 1, 9, LONDON)
    assert d[K.REASONABLE_GROUNDS_DECISION].met_at == london(2026, 1, 5, 11)
    # 5 Jan + 30 = 4 Feb; 5 Jan + 14 = 19 Jan
    assert d[K.RECONSIDERATION_WINDOW_END].due_at == end_of(2026, 2, 4, LONDON)
    assert d[K.MOVE_ON_END].due_at == end_of(2026, 1, 19, LONDON)
    assert d[K.MOVE_ON_END].label_key == "deadline.move_on_end.negative"
    window = d[K.RECONSIDERATION_WINDOW_END]
    assert window.status(london(2026, 1, 20)) == "pending"
    assert window.status(london(2026, 2, 2)) == "due_soon"
    assert window.status(london(2026, 2, 5)) == "met"  # the window has closed; never overdue


def test_negative_identification_decision() -> None:
    m = Milestones(
        referred_at=london(2026, 1, 2, 9),
        reasonable_grounds_at=london(2026, 1, 6, 9),
        identification_decided_at=london(2026, 6, 1, 9),
        identification_positive=False,
        not_identified_at=london(2026, 6, 1, 9),
    )
    d = by_kind(compute_deadlines(profile("uk"), m))
    assert d[K.IDENTIFICATION_DECISION].met_at == london(2026, 6, 1, 9)
    # 6 Jan + 90 days = 6 Apr; decided 1 Jun: late
    assert d[K.IDENTIFICATION_DECISION].due_at == end_of(2026, 4, 6, LONDON)
    assert d[K.IDENTIFICATION_DECISION].met_late
    assert d[K.RECONSIDERATION_WINDOW_END].due_at == end_of(2026, 7, 1, LONDON)
    assert d[K.MOVE_ON_END].due_at == end_of(2026, 6, 15, LONDON)


def test_positive_identification_move_on() -> None:
    m = Milestones(
        reasonable_grounds_at=london(2026, 1, 6, 9),
        identification_decided_at=london(2026, 6, 1, 9),
        identification_positive=True,
    )
    d = by_kind(compute_deadlines(profile("uk"), m))
    assert K.RECONSIDERATION_WINDOW_END not in d
    # 1 Jun + 45: 29 more days in June (30 Jun), then 16 Jul
    assert d[K.MOVE_ON_END].due_at == end_of(2026, 7, 16, LONDON)
    assert d[K.MOVE_ON_END].label_key == "deadline.move_on_end.positive"
    assert d[K.MOVE_ON_END].status(london(2026, 7, 17)) == "met"


def test_negative_overturned_on_reconsideration() -> None:
    m = Milestones(
        referred_at=london(2026, 1, 2, 9),
        not_identified_at=london(2026, 1, 5, 11),
        reasonable_grounds_at=london(2026, 2, 1, 10),
    )
    d = by_kind(compute_deadlines(profile("uk"), m))
    assert K.RECONSIDERATION_WINDOW_END not in d
    assert K.MOVE_ON_END not in d
    assert d[K.REASONABLE_GROUNDS_DECISION].met_at == london(2026, 1, 5, 11)
    assert d[K.IDENTIFICATION_DECISION].met_at is None


def test_return_follow_ups() -> None:
    m = Milestones(
        reasonable_grounds_at=london(2026, 1, 6, 9),
        residence_permit_expires_on=date(2026, 9, 30),
        last_contact_at=london(2026, 4, 20, 9),
        returned_at=london(2026, 5, 1, 12),
        completed_follow_ups={30: london(2026, 5, 20, 10), 90: london(2026, 8, 3, 10)},
    )
    deadlines = compute_deadlines(profile("uk"), m)
    follow_ups = [d for d in deadlines if d.kind is K.RETURN_FOLLOW_UP]
    assert [f.checkpoint_days for f in follow_ups] == [30, 90, 180, 365]
    # 1 May is day 121 of 2026: +30 = 31 May, +90 = day 211 = 30 Jul, +180 = day 301 =
    # 28 Oct, +365 = 1 May 2027
    assert [f.due_at for f in follow_ups] == [
        end_of(2026, 5, 31, LONDON),
        end_of(2026, 7, 30, LONDON),
        end_of(2026, 10, 28, LONDON),
        end_of(2027, 5, 1, LONDON),
    ]
    now = london(2026, 10, 29, 9)
    assert [f.status(now) for f in follow_ups] == ["met", "met", "overdue", "pending"]
    assert [f.met_late for f in follow_ups] == [False, True, False, False]
    kinds = {d.kind for d in deadlines}
    assert K.RESIDENCE_PERMIT_EXPIRY not in kinds  # no longer relevant after return
    assert K.LOST_CONTACT_CHECK not in kinds


def test_residence_permit_and_lost_contact() -> None:
    m = Milestones(
        reasonable_grounds_at=london(2026, 1, 6, 9),
        first_support_contact_at=london(2026, 1, 7, 9),
        last_contact_at=london(2026, 3, 1, 10),
        residence_permit_expires_on=date(2026, 9, 30),
    )
    d = by_kind(compute_deadlines(profile("uk"), m))
    assert d[K.RESIDENCE_PERMIT_EXPIRY].due_at == end_of(2026, 9, 30, LONDON)
    assert d[K.RESIDENCE_PERMIT_EXPIRY].status(london(2026, 10, 1)) == "overdue"
    # last contact 1 Mar + 14 days
    assert d[K.LOST_CONTACT_CHECK].due_at == end_of(2026, 3, 15, LONDON)
    assert d[K.LOST_CONTACT_CHECK].status(london(2026, 3, 16)) == "overdue"


def test_deadlines_are_sorted_by_due_time() -> None:
    m = Milestones(
        detected_at=london(2026, 1, 2, 9),
        referred_at=london(2026, 1, 5, 9),
        reasonable_grounds_at=london(2026, 1, 10, 10),
        first_support_contact_at=london(2026, 1, 11, 10),
    )
    deadlines = compute_deadlines(profile("uk"), m)
    assert [d.kind for d in deadlines] == [
        K.REFERRAL,  # 3 Jan
        K.FIRST_SUPPORT_CONTACT,  # 12 Jan 10:00
        K.REASONABLE_GROUNDS_DECISION,  # 12 Jan end of day
        K.LOST_CONTACT_CHECK,  # 25 Jan
        K.REFLECTION_MINIMUM_END,  # 9 Feb
        K.IDENTIFICATION_DECISION,  # 10 Apr
    ]


# --------------------------------------------------------------------------- status()


def test_status_transitions_around_due_soon() -> None:
    rg = by_kind(compute_deadlines(profile("uk"), REFERRAL_FRIDAY))[K.REASONABLE_GROUNDS_DECISION]
    assert rg.due_soon_days == 3
    due = end_of(2026, 12, 29, LONDON)
    assert rg.due_at == due
    assert rg.status(london(2026, 12, 21, 9)) == "pending"
    assert rg.status(due - timedelta(days=3, microseconds=1)) == "pending"
    assert rg.status(due - timedelta(days=3)) == "due_soon"
    assert rg.status(due) == "due_soon"
    assert rg.status(due + timedelta(microseconds=1)) == "overdue"


def test_status_met_depends_on_when_you_look() -> None:
    m = Milestones(
        referred_at=london(2026, 12, 18, 10), reasonable_grounds_at=london(2027, 1, 4, 9)
    )
    rg = by_kind(compute_deadlines(profile("uk"), m))[K.REASONABLE_GROUNDS_DECISION]
    assert rg.met_late  # due 29 Dec, decided 4 Jan
    assert rg.status(london(2026, 12, 28)) == "due_soon"
    assert rg.status(london(2027, 1, 2)) == "overdue"  # not yet decided at that time
    assert rg.status(london(2027, 1, 4, 9)) == "met"


def test_status_requires_aware_now() -> None:
    rg = compute_deadlines(profile("uk"), REFERRAL_FRIDAY)[1]
    with pytest.raises(ValueError, match="timezone-aware"):
        rg.status(datetime(2026, 12, 20, 9))


def test_zero_due_soon_window() -> None:
    deadline = Deadline(
        kind=K.REFERRAL,
        due_at=london(2026, 1, 1, 12),
        label_key="deadline.referral",
        basis="test",
    )
    assert deadline.status(london(2026, 1, 1, 11, 59)) == "pending"
    assert deadline.status(london(2026, 1, 1, 12)) == "due_soon"
    assert not deadline.met_late and not deadline.met_early


# --------------------------------------------------------------------------- Milestones


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="referred_at must be a timezone-aware datetime"):
        Milestones(referred_at=datetime(2026, 1, 1, 9))
    with pytest.raises(ValueError, match=r"completed_follow_ups\[30\]"):
        Milestones(completed_follow_ups={30: datetime(2026, 1, 1, 9)})


def test_identification_outcome_needs_its_time() -> None:
    with pytest.raises(ValueError, match="must be set together"):
        Milestones(identification_positive=True)
    with pytest.raises(ValueError, match="must be set together"):
        Milestones(identification_decided_at=london(2026, 1, 1))


def test_milestones_are_immutable() -> None:
    follow_ups = {30: london(2026, 5, 20)}
    m = Milestones(completed_follow_ups=follow_ups)
    follow_ups[90] = london(2026, 8, 1)  # the caller's dict changing later has no effect
    assert set(m.completed_follow_ups) == {30}
    with pytest.raises(TypeError):
        m.completed_follow_ups[90] = london(2026, 8, 1)  # type: ignore[index]
