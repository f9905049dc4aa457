"""Retention schedule: crypto-shred victims whose every case has outlived its retention rule.

The schedule is data (`policies/retention.toml`, loaded and validated by
`app.policies.retention`): a bad file stops start-up (and `passage retention check`) with a
message naming the file and the problem.

Rules match a case by stage (and, for closed cases, by closure reason); a closed case with
no rule of its own falls under `[default]`. Cases in any other stage (open work, a missing
child) have no rule: they never expire. A victim is erased only when **every** one of their
cases has expired, and never while a legal hold applies to any of them (proceedings in
investigation, prosecution or trial, or a compensation claim). Erasure goes through
`app.cases.service.erase_victim`, one transaction per victim, and is journaled.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.cases.models import Case
from app.db.base import utcnow
from app.errors import Conflict, ServiceUnavailable
from app.operations.erasure_journal import enqueue_erasure
from app.policies.retention import (
    DefaultRule,
    RetentionPolicy,
    RetentionRule,
)
from app.victims.models import Victim

if TYPE_CHECKING:
    from app.context import AppContext

REASON_CODE = "retention_expired"
#: erase_victim needs the victim.erase permission; the job acts with it and no user id. Its
#: audit events say reason_code "retention_expired" and name the rule in legal_basis.
RETENTION_ACTOR = Actor(user_id=None, role="admin", agency_id=None, username="retention")


# -- evaluation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseRetentionFacts:
    """The plain columns retention reads (no sealed value is loaded)."""

    case_id: uuid.UUID
    victim_id: uuid.UUID
    stage: str
    closure_reason: str | None
    closed_at: datetime | None
    stage_entered_at: datetime
    last_contact_at: datetime | None
    proceedings_status: str
    compensation_claimed: bool


_FACT_COLUMNS = (
    Case.id,
    Case.victim_id,
    Case.stage,
    Case.closure_reason,
    Case.closed_at,
    Case.stage_entered_at,
    Case.last_contact_at,
    Case.proceedings_status,
    Case.compensation_claimed,
)

Status = Literal["expired", "retained", "held", "active"]


@dataclass(frozen=True)
class VictimDecision:
    victim_id: uuid.UUID
    status: Status
    #: The binding rule: the one whose expiry comes last among the victim's cases.
    rule: str | None
    expires_at: datetime | None


def is_held(policy: RetentionPolicy, case: CaseRetentionFacts) -> bool:
    return (
        case.proceedings_status in policy.legal_hold.proceedings_status or case.compensation_claimed
    )


def case_expiry(
    policy: RetentionPolicy, case: CaseRetentionFacts
) -> tuple[RetentionRule | DefaultRule, datetime] | None:
    rule = policy.rule_for(case.stage, case.closure_reason)
    if rule is None:
        return None
    # A missing anchor (e.g. a case closed before the column existed) counts from the moment
    # the case entered its current stage.
    anchor = getattr(case, rule.anchor) or case.stage_entered_at
    return rule, rule.expiry(anchor)


def decide(
    policy: RetentionPolicy,
    victim_id: uuid.UUID,
    cases: Iterable[CaseRetentionFacts],
    now: datetime,
) -> VictimDecision:
    cases = list(cases)
    if not cases or any(is_held(policy, c) for c in cases):
        return VictimDecision(victim_id, "held" if cases else "active", None, None)
    expiries = [case_expiry(policy, c) for c in cases]
    if any(e is None for e in expiries):
        return VictimDecision(victim_id, "active", None, None)
    rule, last = max((e for e in expiries if e is not None), key=lambda e: e[1])
    return VictimDecision(victim_id, "expired" if last <= now else "retained", rule.name, last)


def _facts(rows: Iterable[tuple[object, ...]]) -> list[CaseRetentionFacts]:
    return [CaseRetentionFacts(*row) for row in rows]  # type: ignore[arg-type]


def plan(session: Session, policy: RetentionPolicy, now: datetime) -> list[VictimDecision]:
    """Decide every victim not yet erased. Read-only; the session must see every row."""
    rows = session.execute(
        select(*_FACT_COLUMNS)
        .join(Victim, Victim.id == Case.victim_id)
        .where(Victim.erased_at.is_(None))
        .order_by(Case.victim_id, Case.id)
    ).all()
    by_victim: dict[uuid.UUID, list[CaseRetentionFacts]] = {}
    for facts in _facts(tuple(r) for r in rows):
        by_victim.setdefault(facts.victim_id, []).append(facts)
    return [decide(policy, vid, cases, now) for vid, cases in by_victim.items()]


@dataclass
class RetentionReport:
    dry_run: bool
    erased: Counter[str] = field(default_factory=Counter)
    retained: Counter[str] = field(default_factory=Counter)
    held: int = 0
    active: int = 0
    skipped: int = 0
    #: Erasures refused because the journal could not be written (nothing erased; exit 1).
    not_journaled: int = 0
    journaled: int = 0
    erased_ids: list[uuid.UUID] = field(default_factory=list)

    def lines(self) -> list[str]:
        verb = "would erase" if self.dry_run else "erased"
        out = [
            f"{verb} {self.erased[name]:>6}  kept {self.retained[name]:>6}  {name}"
            for name in sorted(set(self.erased) | set(self.retained))
        ]
        out.append(f"legal hold (never touched): {self.held}")
        out.append(f"open cases (no rule applies): {self.active}")
        if self.skipped:
            out.append(f"skipped (changed since planning, or already erased): {self.skipped}")
        if self.not_journaled:
            out.append(
                f"NOT ERASED, the erasure journal could not be written: {self.not_journaled}"
            )
        total = sum(self.erased.values())
        out.append(
            f"total {verb}: {total}" + ("" if self.dry_run else f"; journaled {self.journaled}")
        )
        return out


def erase_expired_victim(
    session: Session,
    ctx: AppContext,
    policy: RetentionPolicy,
    victim_id: uuid.UUID,
    now: datetime,
) -> VictimDecision:
    """Re-decide one victim under lock and erase them if still expired. Never commits."""
    from app.cases.service import erase_victim

    rows = session.execute(
        select(*_FACT_COLUMNS).where(Case.victim_id == victim_id).with_for_update()
    ).all()
    decision = decide(policy, victim_id, _facts(tuple(r) for r in rows), now)
    if decision.status != "expired":
        return decision
    erase_victim(
        session,
        ctx,
        RETENTION_ACTOR,
        victim_id,
        legal_basis=f"retention_policy:{decision.rule}",
        reason_code=REASON_CODE,
    )
    victim = session.get(Victim, victim_id)
    # No-op once erase_victim enqueues the journal line itself (it is idempotent).
    enqueue_erasure(
        session,
        victim_id,
        reason_code=REASON_CODE,
        erased_at=victim.erased_at if victim and victim.erased_at else now,
    )
    return decision


def apply(
    new_session: Callable[[], Session],
    ctx: AppContext,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> RetentionReport:
    """The retention job: plan, then one transaction per expired victim.

    `new_session` returns a system-scope session (`app.db.rls.system_session`). This function
    is the job's unit of work, as a request handler is for a request: it commits each
    victim's erasure on its own, so one failure does not undo the others.
    """
    moment = now or utcnow()
    report = RetentionReport(dry_run=dry_run)
    with new_session() as session:
        decisions = plan(session, policy, moment)
    for decision in decisions:
        if decision.status == "held":
            report.held += 1
        elif decision.status == "active":
            report.active += 1
        elif decision.status == "retained":
            report.retained[decision.rule or "default"] += 1
        elif dry_run:
            report.erased[decision.rule or "default"] += 1
    if dry_run:
        return report
    for decision in decisions:
        if decision.status != "expired":
            continue
        try:
            with new_session() as session, session.begin():
                again = erase_expired_victim(session, ctx, policy, decision.victim_id, moment)
        except Conflict:
            report.skipped += 1
            continue
        except ServiceUnavailable:
            # The erasure journal could not be written: nothing was erased for this victim.
            report.not_journaled += 1
            continue
        if again.status == "expired":
            report.erased[again.rule or "default"] += 1
            report.erased_ids.append(decision.victim_id)
        else:
            report.skipped += 1
    return report
