"""Derive per-episode milestones from a case's audit timeline. Pure: no database, no clock.

The audit trail is the source of truth for *when* things happened: the case row's milestone
columns are a cache the workflow overwrites (a re-trafficking report clears them), while
the hash-chained events are append-only. Each case yields one row per episode; an episode
ends when ``report_re_trafficking`` re-opens the case at ``detected``.

Conventions (the same as :mod:`app.cases.deadlines`, which the operational screens use):

* day counts use the local calendar day in the profile's time zone;
* working days use the profile's :class:`~app.cases.deadlines.WorkingDayCalendar`, the
  start day excluded: a decision is on target when taken by the end of the N-th working day
  after the referral day;
* the minimum reflection period covers the whole of the ``min_reflection_days`` days after
  the day reflection started; a decision taken on or before its last day is "before the
  minimum";
* hours are exact elapsed hours in UTC, floored.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from app.cases.deadlines import calendar_for
from app.policies.countries import CountryProfile

# Actions a reporting refresh needs to read (everything else in a chain is ignored).
RELEVANT_ACTIONS = (
    "case_registered",
    "transition",
    "consent_recorded",
    "consent_withdrawn",
    "assessment_recorded",
    "guardian_assigned",
    "assistance_recorded",
    "note_added",
    "enforcement_event",
    "assistance_suspended",
    "assistance_refused",
)
# Removal, expulsion or transfer measures taken against the person (CETS 197 Art. 13(1)).
# No Passage service writes them; an integration with an enforcement system, or an import,
# must use this action. Any such event during the minimum reflection period is a breach.
ENFORCEMENT_ACTIONS = frozenset({"enforcement_event"})
# Assistance stopped or refused because the person did not cooperate (CETS 197 Art. 12(6)).
# Passage has no code path that conditions assistance on anything; these reserved actions
# let an import or a future service record it, and the indicator counts them (0 expected).
ASSISTANCE_REFUSAL_ACTIONS = frozenset({"assistance_suspended", "assistance_refused"})

_RG_DECISIONS = frozenset({"positive_reasonable_grounds", "negative_reasonable_grounds"})
_REFLECTION_STARTS = frozenset({"positive_reasonable_grounds", "overturn_to_recovery"})
_ID_DECISIONS = frozenset({"positive_identification", "negative_identification"})
_NEGATIVES = frozenset(
    {"negative_reasonable_grounds", "negative_identification", "uphold_negative"}
)
_REFLECTION_CUTS = frozenset(
    {"positive_identification", "negative_identification", "confirm_return_handover", "close"}
)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """The parts of an audit event the derivation reads (never personal values)."""

    seq: int
    occurred_at: datetime
    action: str
    actor_user_id: uuid.UUID | None
    entity_id: uuid.UUID | None
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CaseDimensions:
    """The clear statistical projection of a case (its plain columns)."""

    case_id: uuid.UUID
    reference: str
    country_profile: str
    owning_agency_id: uuid.UUID
    region: str | None
    nationality: str | None
    sex: str
    age_band: str
    exploitation_forms: Sequence[str]
    detecting_org_type: str
    detected_on: date
    stage: str


def exploitation_category(forms: Sequence[str]) -> str:
    distinct = sorted(set(forms))
    if not distinct:
        return "unknown"
    return distinct[0] if len(distinct) == 1 else "multiple"


def quarter_of(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


@dataclass
class _Episode:
    number: int
    started_at: datetime | None = None
    detected_on: date | None = None
    age_band: str | None = None
    stage: str = "detected"
    screened_at: datetime | None = None
    declined_at: datetime | None = None
    referred_at: datetime | None = None
    referral_consent: bool | None = None
    child_pathway: bool | None = None
    rg_decided_at: datetime | None = None
    rg_positive: bool | None = None
    reflection_started_at: datetime | None = None
    reflection_cut_at: datetime | None = None
    id_decided_at: datetime | None = None
    id_positive: bool | None = None
    identified_at: datetime | None = None
    support_started_at: datetime | None = None
    negatives: int = 0
    negatives_second_reviewed: int = 0
    negative_at: datetime | None = None
    reconsideration_at: datetime | None = None
    reconsideration_outcome: str | None = None
    guardian_requested_here: datetime | None = None
    guardian_assigned_here: datetime | None = None
    missing_child_reports: int = 0
    missing_child_open: bool = False
    lost_contact_reports: int = 0
    assistance_refusals: int = 0
    consent_withdrawals: int = 0
    return_requested_at: datetime | None = None
    current_return_request: datetime | None = None
    returned_at: datetime | None = None
    return_days: int | None = None
    return_checks: dict[str, bool] = field(default_factory=dict)
    returns_cancelled: int = 0
    reintegration_at: datetime | None = None
    re_trafficked_at: datetime | None = None
    closed_at: datetime | None = None
    closure_reason: str | None = None
    contacts: list[datetime] = field(default_factory=list)
    enforcement: list[datetime] = field(default_factory=list)
    # "Before" means earlier in the chain (seq order), whatever the timestamps say.
    consents: dict[uuid.UUID | None, str] = field(default_factory=dict)
    withdrawn: set[uuid.UUID | None] = field(default_factory=set)
    assessments: set[str] = field(default_factory=set)
    # pending negative proposal: (stage, actor)
    proposal: tuple[str, uuid.UUID | None] | None = None

    def consent_active(self, purpose: str) -> bool:
        return any(
            what == purpose and consent_id not in self.withdrawn
            for consent_id, what in self.consents.items()
        )


def _first(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None else current


def derive_episodes(
    case: CaseDimensions, events: Sequence[TimelineEvent], profile: CountryProfile
) -> list[dict[str, Any]]:
    """One row (a dict of ``reporting.episodes`` columns) per episode of the case.

    ``events`` are the case chain's events in ``seq`` order (others are ignored).
    """
    episodes: list[_Episode] = []
    ep = _Episode(number=1)
    registration_band: str | None = None
    registration_detected: date | None = None
    guardian_requested_at: datetime | None = None
    guardian_assigned_at: datetime | None = None
    window = timedelta(days=profile.reconsideration_window_days)

    for ev in sorted(events, key=lambda e: e.seq):
        at, action, d = ev.occurred_at, ev.action, ev.details
        if action == "case_registered":
            ep.started_at = at
            registration_band = _str(d.get("age_band"))
            registration_detected = _date(d.get("detected_on"))
            continue
        if action == "consent_recorded":
            ep.consents[ev.entity_id] = str(d.get("purpose"))
        elif action == "consent_withdrawn":
            ep.withdrawn.add(ev.entity_id)
            ep.consent_withdrawals += 1
        elif action == "assessment_recorded":
            kind = str(d.get("kind"))
            ep.assessments.add(kind)
            if kind == "guardian_request":
                guardian_requested_at = guardian_requested_at or at
                ep.guardian_requested_here = ep.guardian_requested_here or at
        elif action == "guardian_assigned":
            if guardian_assigned_at is None:
                guardian_assigned_at = at
                ep.guardian_assigned_here = at
            guardian_requested_at = guardian_requested_at or at
        elif action == "assistance_recorded" or (
            action == "note_added" and d.get("kind") == "contact"
        ):
            ep.contacts.append(at)
        elif action in ENFORCEMENT_ACTIONS:
            ep.enforcement.append(at)
        elif action in ASSISTANCE_REFUSAL_ACTIONS:
            ep.assistance_refusals += 1
        elif action == "transition":
            event = str(d.get("event"))
            source = str(d.get("from"))
            target = str(d.get("to"))
            if event == "report_re_trafficking":
                ep.stage = source
                ep.re_trafficked_at = at
                episodes.append(ep)
                ep = _Episode(number=ep.number + 1, started_at=at)
                ep.stage = target
                continue
            ep.stage = target
            _apply_transition(
                ep,
                event,
                source,
                target,
                at,
                ev.actor_user_id,
                d,
                window=window,
                band=registration_band or case.age_band,
                guardian_requested_at=guardian_requested_at,
                guardian_assigned_at=guardian_assigned_at,
            )
    episodes.append(ep)

    rows: list[dict[str, Any]] = []
    last = len(episodes)
    for item in episodes:
        detected: date | None
        if item.number == 1:
            band = registration_band or case.age_band
            if registration_detected is not None:
                detected = registration_detected
            elif last == 1:
                detected = case.detected_on
            else:  # the case row now holds the latest episode's detection date
                detected = _local_day(item.started_at, profile) if item.started_at else None
                detected = detected or case.detected_on
        else:
            band = case.age_band
            detected = (
                case.detected_on
                if item.number == last
                else _local_day(item.started_at, profile)
                if item.started_at
                else case.detected_on
            )
        item.age_band = band
        item.detected_on = detected
        rows.append(_row(case, item, profile, is_current=item.number == last, detected_on=detected))
    return rows


def _apply_transition(
    ep: _Episode,
    event: str,
    source: str,
    target: str,
    at: datetime,
    actor: uuid.UUID | None,
    details: Mapping[str, Any],
    *,
    window: timedelta,
    band: str,
    guardian_requested_at: datetime | None,
    guardian_assigned_at: datetime | None,
) -> None:
    if event == "record_screening":
        ep.screened_at = _first(ep.screened_at, at)
    elif event == "decline_formal_identification":
        ep.declined_at = _first(ep.declined_at, at)
    if target == "referred" and ep.referred_at is None:
        ep.referred_at = at
        ep.referral_consent = ep.consent_active("referral")
        guardian_on_record = guardian_requested_at is not None or guardian_assigned_at is not None
        ep.child_pathway = band != "adult" and guardian_on_record
    if event in _RG_DECISIONS and ep.rg_decided_at is None:
        ep.rg_decided_at = at
        ep.rg_positive = event == "positive_reasonable_grounds"
    if event in _REFLECTION_STARTS and ep.reflection_started_at is None:
        ep.reflection_started_at = at
    if (
        event in _REFLECTION_CUTS
        and ep.reflection_started_at is not None
        and ep.reflection_cut_at is None
    ):
        ep.reflection_cut_at = at
    if event in _ID_DECISIONS and ep.id_decided_at is None:
        ep.id_decided_at = at
        ep.id_positive = event == "positive_identification"
    if event in ("positive_identification", "overturn_to_identified"):
        ep.identified_at = _first(ep.identified_at, at)
    if event == "propose_negative_decision":
        ep.proposal = (source, actor)
    if event in _NEGATIVES:
        ep.negatives += 1
        ep.negative_at = _first(ep.negative_at, at)
        if ep.proposal is not None and ep.proposal[0] == source and ep.proposal[1] != actor:
            ep.negatives_second_reviewed += 1
        ep.proposal = None
    if event == "request_reconsideration" and ep.reconsideration_at is None:
        ep.reconsideration_at = at
    if event == "uphold_negative" and ep.reconsideration_outcome is None:
        ep.reconsideration_outcome = "upheld"
    if event in ("overturn_to_recovery", "overturn_to_identified"):
        ep.reconsideration_outcome = ep.reconsideration_outcome or "overturned"
    if event == "start_long_term_support":
        ep.support_started_at = _first(ep.support_started_at, at)
    if event == "plan_return":
        ep.return_requested_at = _first(ep.return_requested_at, at)
        ep.current_return_request = at
    if event == "cancel_return":
        ep.returns_cancelled += 1
        ep.current_return_request = None
    if event == "confirm_return_handover" and ep.returned_at is None:
        ep.returned_at = at
        asked = ep.current_return_request or ep.return_requested_at
        ep.return_days = None if asked is None else (at - asked).days
        ep.return_checks = {
            "risk": "pre_return_risk" in ep.assessments,
            "voluntary": ep.consent_active("return_preparation"),
            "receiving": "receiving_organisation" in ep.assessments,
            "data": ep.consent_active("data_sharing_transnational"),
            "child_without_bia": band != "adult" and "best_interests" not in ep.assessments,
        }
    if event == "start_reintegration_monitoring":
        ep.reintegration_at = _first(ep.reintegration_at, at)
    if event == "report_missing_child":
        ep.missing_child_reports += 1
        ep.missing_child_open = True
    if event == "report_lost_contact":
        ep.lost_contact_reports += 1
    if event == "contact_restored":
        ep.missing_child_open = False
        ep.contacts.append(at)
    if event == "close":
        ep.closed_at = at
        ep.closure_reason = _str(details.get("closure_reason"))
        ep.missing_child_open = False
    if target != source:
        ep.proposal = None  # any stage change discards a pending negative proposal


def _row(
    case: CaseDimensions,
    ep: _Episode,
    profile: CountryProfile,
    *,
    is_current: bool,
    detected_on: date | None,
) -> dict[str, Any]:
    detected = detected_on or case.detected_on
    row: dict[str, Any] = {
        "case_id": case.case_id,
        "episode": ep.number,
        "reference": case.reference,
        "is_current": is_current,
        "country_profile": case.country_profile,
        "owning_agency_id": case.owning_agency_id,
        "region": case.region,
        "nationality": case.nationality,
        "sex": case.sex,
        "age_band": ep.age_band or case.age_band,
        "exploitation_forms": "," + ",".join(sorted(set(case.exploitation_forms))) + ","
        if case.exploitation_forms
        else ",",
        "exploitation_category": exploitation_category(case.exploitation_forms),
        "detecting_org_type": case.detecting_org_type,
        "detected_on": detected,
        "detected_year": detected.year,
        "detected_quarter": quarter_of(detected),
        "detected_month": f"{detected.year}-{detected.month:02d}",
        "stage": case.stage if is_current else ep.stage,
        "reflection_gated": profile.identification_gated_by_reflection
        and profile.min_reflection_days > 0,
        "registered_at": ep.started_at,
        "screened_at": ep.screened_at,
        "declined_at": ep.declined_at,
        "referred_at": ep.referred_at,
        "referred_quarter": quarter_of(ep.referred_at.astimezone(UTC).date())
        if ep.referred_at
        else None,
        "referral_days": None,
        "referral_on_time": None,
        "referral_consent": ep.referral_consent,
        "child_pathway": ep.child_pathway,
        "rg_due_at": None,
        "rg_decided_at": ep.rg_decided_at,
        "rg_positive": ep.rg_positive,
        "rg_working_days": None,
        "rg_on_time": None,
        "reflection_started_at": ep.reflection_started_at,
        "reflection_min_end_at": None,
        "reflection_cut_at": ep.reflection_cut_at,
        "enforcement_in_reflection": 0,
        "contact_due_at": None,
        "first_contact_at": None,
        "contact_hours": None,
        "contact_on_time": None,
        "id_decided_at": ep.id_decided_at,
        "id_decided_quarter": quarter_of(ep.id_decided_at.astimezone(UTC).date())
        if ep.id_decided_at
        else None,
        "id_positive": ep.id_positive,
        "id_days": None,
        "id_before_min": None,
        "identified_at": ep.identified_at,
        "support_started_at": ep.support_started_at,
        "negatives": ep.negatives,
        "negatives_second_reviewed": ep.negatives_second_reviewed,
        "negative_at": ep.negative_at,
        "reconsideration_at": ep.reconsideration_at,
        "reconsideration_in_window": None,
        "reconsideration_outcome": ep.reconsideration_outcome,
        "guardian_requested_at": ep.guardian_requested_here,
        "guardian_assigned_at": ep.guardian_assigned_here,
        "guardian_hours": None,
        "missing_child_reports": ep.missing_child_reports,
        "missing_child_open": ep.missing_child_open if ep.missing_child_reports else None,
        "lost_contact_reports": ep.lost_contact_reports,
        "assistance_refusals": ep.assistance_refusals,
        "consent_withdrawals": ep.consent_withdrawals,
        "return_requested_at": ep.return_requested_at,
        "returned_at": ep.returned_at,
        "return_days": ep.return_days,
        "return_risk_assessed": ep.return_checks.get("risk"),
        "return_voluntary": ep.return_checks.get("voluntary"),
        "return_receiving_org": ep.return_checks.get("receiving"),
        "return_data_consent": ep.return_checks.get("data"),
        "return_child_without_bia": ep.return_checks.get("child_without_bia"),
        "returns_cancelled": ep.returns_cancelled,
        "reintegration_at": ep.reintegration_at,
        "follow_ups_reached": None,
        "re_trafficked_at": ep.re_trafficked_at,
        "closed_at": ep.closed_at,
        "closure_reason": ep.closure_reason,
    }
    # Detection -> referral (calendar days; the referral deadline of app.cases.deadlines).
    if ep.referred_at is not None:
        detected_local = _local_day(datetime.combine(detected, time.min, tzinfo=UTC), profile)
        due = _end_of_day(detected_local + timedelta(days=profile.referral_target_days), profile)
        row["referral_days"] = (_local_day(ep.referred_at, profile) - detected).days
        row["referral_on_time"] = ep.referred_at <= due
        # Referral -> reasonable-grounds decision (working days of the profile's calendar).
        calendar = calendar_for(profile)
        referred_day = _local_day(ep.referred_at, profile)
        rg_due_day = calendar.add_working_days(
            referred_day, profile.reasonable_grounds_target_working_days
        )
        row["rg_due_at"] = _end_of_day(rg_due_day, profile)
        if ep.rg_decided_at is not None:
            row["rg_working_days"] = calendar.working_days_between(
                referred_day, _local_day(ep.rg_decided_at, profile)
            )
            row["rg_on_time"] = ep.rg_decided_at <= row["rg_due_at"]
    # Reflection, first support contact, identification decision.
    start = ep.reflection_started_at
    if start is not None:
        start_day = _local_day(start, profile)
        min_end = _end_of_day(start_day + timedelta(days=profile.min_reflection_days), profile)
        row["reflection_min_end_at"] = min_end
        row["enforcement_in_reflection"] = sum(1 for t in ep.enforcement if start <= t <= min_end)
        contact_due = start.astimezone(UTC) + timedelta(hours=profile.first_support_contact_hours)
        row["contact_due_at"] = contact_due
        contacts = [t for t in ep.contacts if t >= start]
        if contacts:
            first = min(contacts)
            row["first_contact_at"] = first
            row["contact_hours"] = _hours(start, first)
            row["contact_on_time"] = first <= contact_due
        if ep.id_decided_at is not None:
            row["id_days"] = (_local_day(ep.id_decided_at, profile) - start_day).days
            row["id_before_min"] = profile.min_reflection_days > 0 and ep.id_decided_at <= min_end
    if ep.reconsideration_at is not None and ep.negative_at is not None:
        row["reconsideration_in_window"] = ep.reconsideration_at <= ep.negative_at + timedelta(
            days=profile.reconsideration_window_days
        )
    if ep.guardian_assigned_here is not None and ep.started_at is not None:
        row["guardian_hours"] = _hours(ep.started_at, ep.guardian_assigned_here)
    if ep.returned_at is not None:
        row["follow_ups_reached"] = _follow_ups(ep.returned_at, ep.contacts, profile)
    return row


def _follow_ups(
    returned_at: datetime, contacts: Sequence[datetime], profile: CountryProfile
) -> str:
    """Checkpoints (days after return) with a contact since the previous checkpoint's due."""
    reached: list[str] = []
    previous = returned_at
    return_day = _local_day(returned_at, profile)
    for checkpoint in profile.return_follow_up_checkpoints_days:
        due = _end_of_day(return_day + timedelta(days=checkpoint), profile)
        if any(previous < t <= due for t in contacts):
            reached.append(str(checkpoint))
        previous = due
    return "," + ",".join(reached) + ","


def follow_up_checkpoints_due(
    returned_at: datetime, profile: CountryProfile, now: datetime
) -> list[int]:
    """Checkpoints whose window has closed by ``now`` (so "reached or missed" is final)."""
    return_day = _local_day(returned_at, profile)
    return [
        c
        for c in profile.return_follow_up_checkpoints_days
        if _end_of_day(return_day + timedelta(days=c), profile) < now
    ]


def _local_day(moment: datetime, profile: CountryProfile) -> date:
    return moment.astimezone(profile.calendar.tzinfo).date()


def _end_of_day(day: date, profile: CountryProfile) -> datetime:
    return datetime.combine(day, time.max, tzinfo=profile.calendar.tzinfo)


def _hours(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds() // 3600)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _date(value: Any) -> date | None:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None
