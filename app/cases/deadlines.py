"""Case deadlines computed from a country profile and the milestones a case has reached.

Pure code: no database, no clock. Callers pass the milestones (timezone-aware datetimes)
and, for :meth:`Deadline.status`, the current time.

Conventions
-----------
* Day-based targets count calendar days from the local date (profile time zone) of the
  triggering event, the event day excluded, and fall due at the **end** of the last day
  (23:59:59.999999 local time). "Within 1 day of detection on 3 March" is due at the end
  of 4 March.
* Working-day targets do the same with working days (:class:`WorkingDayCalendar`).
* Hour-based targets (first support contact) are exact elapsed hours, computed in UTC so
  that a daylight-saving change does not shorten or lengthen them.
* The minimum reflection period covers the whole of the ``min_reflection_days`` days after
  the positive reasonable-grounds day. Where the profile gates identification on it, an
  identification decision is allowed from the start of the following day
  (:attr:`Deadline.not_before`); one taken earlier is reported by :attr:`Deadline.met_early`.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Literal

import holidays

from app.policies.countries import CalendarSpec, CountryProfile

__all__ = [
    "Deadline",
    "DeadlineKind",
    "DeadlineStatus",
    "Milestones",
    "WorkingDayCalendar",
    "calendar_for",
    "compute_deadlines",
    "working_day_calendar",
]

DeadlineStatus = Literal["met", "overdue", "due_soon", "pending"]


# --------------------------------------------------------------------------- calendar


@dataclass(frozen=True, slots=True)
class _WorkingDayIndex:
    """Ordinals of every working day from 1 January ``first_year`` to 31 December ``last_year``."""

    first_year: int
    last_year: int
    ordinals: tuple[int, ...]


class WorkingDayCalendar:
    """Working-day arithmetic for one :class:`CalendarSpec`.

    A day is a working day unless its ISO weekday is in ``spec.weekend``, it is a public
    holiday of ``spec.holidays_country`` (and subdivision) according to the ``holidays``
    library, or it is listed in ``spec.extra_holidays``. Holidays are computed lazily for
    the years that are asked about. Instances are safe to share between threads; build them
    through :func:`working_day_calendar` to reuse one per calendar.
    """

    def __init__(self, spec: CalendarSpec) -> None:
        self._weekend = frozenset(spec.weekend)
        self._country = spec.holidays_country
        self._subdivision = spec.holidays_subdivision
        self._extra = frozenset(spec.extra_holidays)
        self._holidays_by_year: dict[int, frozenset[date]] = {}
        self._index: _WorkingDayIndex | None = None
        self._lock = threading.Lock()

    def holidays_in(self, year: int) -> frozenset[date]:
        """Public and extra holidays of ``year`` (including those that fall on a weekend)."""
        cached = self._holidays_by_year.get(year)
        if cached is None:
            days = {d for d in self._extra if d.year == year}
            if self._country is not None:
                public = holidays.country_holidays(
                    self._country, subdiv=self._subdivision, years=year
                )
                days.update(public.keys())
            cached = frozenset(days)
            self._holidays_by_year[year] = cached
        return cached

    def is_working_day(self, d: date) -> bool:
        return d.isoweekday() not in self._weekend and d not in self.holidays_in(d.year)

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start``.

        ``start`` itself is never counted: counting begins on the next working day, so a
        referral on Friday plus 1 working day is due on Monday (if Monday is not a holiday).
        ``n == 0`` returns ``start`` unchanged.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if n == 0:
            return start
        index = self._covering(start.year, start.year + 1 + n // 200)
        position = bisect_right(index.ordinals, start.toordinal())
        while position + n > len(index.ordinals):
            index = self._covering(index.first_year, index.last_year + 1)
        return date.fromordinal(index.ordinals[position + n - 1])

    def working_days_between(self, a: date, b: date) -> int:
        """Working days ``d`` with ``a < d <= b``; negative (the count in ``(b, a]``) if ``b < a``.

        This is the inverse of :meth:`add_working_days`:
        ``working_days_between(d, add_working_days(d, n)) == n``.
        """
        if a == b:
            return 0
        low, high = (a, b) if a < b else (b, a)
        index = self._covering(low.year, high.year)
        count = bisect_right(index.ordinals, high.toordinal()) - bisect_right(
            index.ordinals, low.toordinal()
        )
        return count if a < b else -count

    def _covering(self, first_year: int, last_year: int) -> _WorkingDayIndex:
        index = self._index
        if index is not None and index.first_year <= first_year and last_year <= index.last_year:
            return index
        with self._lock:
            index = self._index
            if index is not None:
                if index.first_year <= first_year and last_year <= index.last_year:
                    return index
                first_year = min(first_year, index.first_year)
                last_year = max(last_year, index.last_year)
            ordinals = tuple(
                ordinal
                for ordinal in range(
                    date(first_year, 1, 1).toordinal(), date(last_year, 12, 31).toordinal() + 1
                )
                if self.is_working_day(date.fromordinal(ordinal))
            )
            index = _WorkingDayIndex(first_year, last_year, ordinals)
            self._index = index
            return index


@lru_cache(maxsize=64)
def working_day_calendar(spec: CalendarSpec) -> WorkingDayCalendar:
    """The shared :class:`WorkingDayCalendar` for a calendar spec (cached).

    Keyed by the (frozen, hashable) spec itself rather than by profile code, so two
    profiles with the same calendar share one instance and a changed spec never reuses a
    stale calendar.
    """
    return WorkingDayCalendar(spec)


def calendar_for(profile: CountryProfile) -> WorkingDayCalendar:
    """The shared working-day calendar of a profile."""
    return working_day_calendar(profile.calendar)


# --------------------------------------------------------------------------- deadlines


class DeadlineKind(StrEnum):
    REFERRAL = "referral"
    REASONABLE_GROUNDS_DECISION = "reasonable_grounds_decision"
    FIRST_SUPPORT_CONTACT = "first_support_contact"
    REFLECTION_MINIMUM_END = "reflection_minimum_end"
    IDENTIFICATION_DECISION = "identification_decision"
    RECONSIDERATION_WINDOW_END = "reconsideration_window_end"
    MOVE_ON_END = "move_on_end"
    RESIDENCE_PERMIT_EXPIRY = "residence_permit_expiry"
    RETURN_FOLLOW_UP = "return_follow_up"
    LOST_CONTACT_CHECK = "lost_contact_check"


_KIND_ORDER = {kind: position for position, kind in enumerate(DeadlineKind)}


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


@dataclass(frozen=True, slots=True)
class Milestones:
    """What a case has reached so far. All datetimes must be timezone-aware.

    * ``reasonable_grounds_at``: a **positive** reasonable-grounds decision.
    * ``not_identified_at``: the case was found not to be a victim, by a negative
      reasonable-grounds decision (no ``reasonable_grounds_at`` before it) or a negative
      identification decision.
    * ``identification_decided_at`` / ``identification_positive``: the identification
      (conclusive) decision and its outcome.
    * ``completed_follow_ups``: post-return follow-ups done, keyed by checkpoint day number
      (as in ``profile.return_follow_up_checkpoints_days``), with the time each was done.
    """

    detected_at: datetime | None = None
    referred_at: datetime | None = None
    reasonable_grounds_at: datetime | None = None
    first_support_contact_at: datetime | None = None
    identification_decided_at: datetime | None = None
    identification_positive: bool | None = None
    not_identified_at: datetime | None = None
    returned_at: datetime | None = None
    residence_permit_expires_on: date | None = None
    last_contact_at: datetime | None = None
    completed_follow_ups: Mapping[int, datetime] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    def __post_init__(self) -> None:
        for name in (
            "detected_at",
            "referred_at",
            "reasonable_grounds_at",
            "first_support_contact_at",
            "identification_decided_at",
            "not_identified_at",
            "returned_at",
            "last_contact_at",
        ):
            value = getattr(self, name)
            if value is not None:
                _require_aware(value, name)
        for checkpoint, done_at in self.completed_follow_ups.items():
            _require_aware(done_at, f"completed_follow_ups[{checkpoint}]")
        if (self.identification_decided_at is None) != (self.identification_positive is None):
            raise ValueError(
                "identification_decided_at and identification_positive must be set together"
            )
        if isinstance(self.residence_permit_expires_on, datetime):
            raise ValueError("residence_permit_expires_on must be a date, not a datetime")
        object.__setattr__(
            self, "completed_follow_ups", MappingProxyType(dict(self.completed_follow_ups))
        )

    def negative_decision_at(self) -> datetime | None:
        """The current negative decision, or None if there is none or a later positive
        decision (e.g. after reconsideration) has replaced it."""
        negative = self.not_identified_at
        if negative is None and self.identification_positive is False:
            negative = self.identification_decided_at
        if negative is None:
            return None
        if self.reasonable_grounds_at is not None and self.reasonable_grounds_at > negative:
            return None
        if (
            self.identification_positive
            and self.identification_decided_at is not None
            and self.identification_decided_at > negative
        ):
            return None
        return negative


@dataclass(frozen=True, slots=True)
class Deadline:
    """One deadline of a case.

    ``elapses`` marks periods that end by themselves (minimum reflection period,
    reconsideration window, move-on period): nothing has to be done by ``due_at``, so they
    never become overdue; :meth:`status` reports them as ``"met"`` once they have run out.
    """

    kind: DeadlineKind
    due_at: datetime
    label_key: str
    basis: str
    met_at: datetime | None = None
    not_before: datetime | None = None
    """Earliest time the action may lawfully be taken, if any."""
    checkpoint_days: int | None = None
    """For return follow-ups: the checkpoint (days after return)."""
    elapses: bool = False
    due_soon_days: int = 0
    """Copied from ``profile.due_soon_days``."""

    @property
    def met_late(self) -> bool:
        return self.met_at is not None and self.met_at > self.due_at

    @property
    def met_early(self) -> bool:
        """Met before :attr:`not_before` (e.g. identified during the reflection period)."""
        return (
            self.met_at is not None
            and self.not_before is not None
            and self.met_at < self.not_before
        )

    def status(self, now: datetime) -> DeadlineStatus:
        """``met`` / ``overdue`` / ``due_soon`` / ``pending`` as seen at ``now``.

        A deadline met after its due time is still ``"met"`` (see :attr:`met_late`). A
        ``met_at`` later than ``now`` is ignored, so a past ``now`` gives the status as it
        was then. ``due_soon`` means at most ``due_soon_days`` days are left.
        """
        _require_aware(now, "now")
        if self.met_at is not None and self.met_at <= now:
            return "met"
        if now > self.due_at:
            return "met" if self.elapses else "overdue"
        if self.due_at - now <= timedelta(days=self.due_soon_days):
            return "due_soon"
        return "pending"


def _end_of_day(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.max, tzinfo=tz)


def _start_of_day(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def compute_deadlines(profile: CountryProfile, m: Milestones) -> list[Deadline]:
    """The deadlines that apply to a case with milestones ``m`` under ``profile``.

    Sorted by due time. Which deadlines appear:

    * ``referral``: once detected; met by the referral.
    * ``reasonable_grounds_decision``: once referred; met by the first reasonable-grounds
      decision, positive or negative.
    * ``first_support_contact``, ``reflection_minimum_end`` (if the profile has one) and
      ``identification_decision``: once reasonable grounds are positive.
    * ``reconsideration_window_end`` (if the profile has one) and ``move_on_end``: after a
      current negative decision; ``move_on_end`` also after a positive identification.
    * ``residence_permit_expiry``: while a permit is recorded and the person has not
      returned.
    * ``return_follow_up``: one per profile checkpoint, once returned.
    * ``lost_contact_check``: while the person has not returned, from the last contact.
    """
    tz = profile.calendar.tzinfo
    basis = profile.legal_basis.for_deadline
    soon = profile.due_soon_days
    out: list[Deadline] = []

    def local_day(moment: datetime) -> date:
        return moment.astimezone(tz).date()

    def days_after(moment: datetime, days: int) -> datetime:
        return _end_of_day(local_day(moment) + timedelta(days=days), tz)

    def add(
        kind: DeadlineKind,
        due_at: datetime,
        *,
        met_at: datetime | None = None,
        label_key: str | None = None,
        not_before: datetime | None = None,
        checkpoint_days: int | None = None,
        elapses: bool = False,
    ) -> None:
        out.append(
            Deadline(
                kind=kind,
                due_at=due_at,
                label_key=label_key or f"deadline.{kind.value}",
                basis=basis(kind.value),
                met_at=met_at,
                not_before=not_before,
                checkpoint_days=checkpoint_days,
                elapses=elapses,
                due_soon_days=soon,
            )
        )

    rg_at = m.reasonable_grounds_at
    negative_at = m.negative_decision_at()

    if m.detected_at is not None:
        add(
            DeadlineKind.REFERRAL,
            days_after(m.detected_at, profile.referral_target_days),
            met_at=m.referred_at,
        )

    if m.referred_at is not None:
        rg_due_day = calendar_for(profile).add_working_days(
            local_day(m.referred_at), profile.reasonable_grounds_target_working_days
        )
        # A negative decision taken before any positive RG was itself the RG decision
        # (it may since have been overturned on reconsideration).
        first_rg_decision = rg_at
        if m.not_identified_at is not None and (rg_at is None or m.not_identified_at < rg_at):
            first_rg_decision = m.not_identified_at
        add(
            DeadlineKind.REASONABLE_GROUNDS_DECISION,
            _end_of_day(rg_due_day, tz),
            met_at=first_rg_decision,
        )

    if rg_at is not None:
        contact_due = (
            rg_at.astimezone(UTC) + timedelta(hours=profile.first_support_contact_hours)
        ).astimezone(tz)
        add(DeadlineKind.FIRST_SUPPORT_CONTACT, contact_due, met_at=m.first_support_contact_at)

        reflection_end: datetime | None = None
        if profile.min_reflection_days > 0:
            reflection_end = days_after(rg_at, profile.min_reflection_days)
            add(DeadlineKind.REFLECTION_MINIMUM_END, reflection_end, elapses=True)

        identification_met = m.identification_decided_at
        if (
            identification_met is None
            and m.not_identified_at is not None
            and m.not_identified_at >= rg_at
        ):
            identification_met = m.not_identified_at
        not_before = None
        if profile.identification_gated_by_reflection and reflection_end is not None:
            not_before = _start_of_day(
                local_day(rg_at) + timedelta(days=profile.min_reflection_days + 1), tz
            )
        add(
            DeadlineKind.IDENTIFICATION_DECISION,
            days_after(rg_at, profile.identification_target_days),
            met_at=identification_met,
            not_before=not_before,
        )

    if negative_at is not None:
        if profile.reconsideration_window_days > 0:
            add(
                DeadlineKind.RECONSIDERATION_WINDOW_END,
                days_after(negative_at, profile.reconsideration_window_days),
                elapses=True,
            )
        add(
            DeadlineKind.MOVE_ON_END,
            days_after(negative_at, profile.move_on_days_negative),
            label_key="deadline.move_on_end.negative",
            elapses=True,
        )
    elif m.identification_positive and m.identification_decided_at is not None:
        add(
            DeadlineKind.MOVE_ON_END,
            days_after(m.identification_decided_at, profile.move_on_days_positive),
            label_key="deadline.move_on_end.positive",
            elapses=True,
        )

    if m.residence_permit_expires_on is not None and m.returned_at is None:
        add(
            DeadlineKind.RESIDENCE_PERMIT_EXPIRY,
            _end_of_day(m.residence_permit_expires_on, tz),
        )

    if m.returned_at is not None:
        for checkpoint in profile.return_follow_up_checkpoints_days:
            add(
                DeadlineKind.RETURN_FOLLOW_UP,
                days_after(m.returned_at, checkpoint),
                met_at=m.completed_follow_ups.get(checkpoint),
                checkpoint_days=checkpoint,
            )
    else:
        contacts = [t for t in (m.last_contact_at, m.first_support_contact_at) if t is not None]
        if contacts:
            add(
                DeadlineKind.LOST_CONTACT_CHECK,
                days_after(max(contacts), profile.lost_contact_threshold_days),
            )

    out.sort(key=lambda d: (d.due_at, _KIND_ORDER[d.kind], d.checkpoint_days or 0))
    return out
