"""Append-only audit trail, hash-chained per case (or per victim/user/system chain).

hash = SHA-256(previous hash || canonical JSON of the event). Events are written by the
services in the same transaction as the change they record; they hold field names, codes
and ids, never personal values.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditChainHead, AuditEvent
from app.auth.actor import Actor
from app.db.base import utcnow
from app.logging import request_id_var

GENESIS_HASH = "0" * 64
_MAX_DETAIL_STRING = 200


class AuditDetailError(ValueError):
    """Details must be codes, ids, numbers or booleans, never free text."""


def chain_key_for(*, case_id: uuid.UUID | None, victim_id: uuid.UUID | None, actor: Actor) -> str:
    if case_id is not None:
        return f"case:{case_id}"
    if victim_id is not None:
        return f"victim:{victim_id}"
    if actor.user_id is not None:
        return f"user:{actor.user_id}"
    return "system"


def _check_detail(value: Any) -> None:
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, str):
        if len(value) > _MAX_DETAIL_STRING:
            raise AuditDetailError("audit details hold codes, not free text")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_detail(item)
        return
    if isinstance(value, dict):
        for item in value.values():
            _check_detail(item)
        return
    raise AuditDetailError(f"unsupported audit detail type {type(value).__name__}")


def canonical_payload(event: AuditEvent) -> bytes:
    payload = {
        "chain_key": event.chain_key,
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(),
        "action": event.action,
        "actor_user_id": str(event.actor_user_id) if event.actor_user_id else None,
        "actor_role": event.actor_role,
        "actor_agency_id": str(event.actor_agency_id) if event.actor_agency_id else None,
        "case_id": str(event.case_id) if event.case_id else None,
        "victim_id": str(event.victim_id) if event.victim_id else None,
        "entity_type": event.entity_type,
        "entity_id": str(event.entity_id) if event.entity_id else None,
        "fields": list(event.fields or []),
        "details": event.details or {},
        "request_id": event.request_id,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_payload(event)).hexdigest()


def _lock_head(session: Session, chain_key: str) -> AuditChainHead:
    stmt = select(AuditChainHead).where(AuditChainHead.chain_key == chain_key).with_for_update()
    head = session.execute(stmt).scalar_one_or_none()
    if head is not None:
        return head
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(
            pg_insert(AuditChainHead)
            .values(chain_key=chain_key, seq=0, hash=GENESIS_HASH)
            .on_conflict_do_nothing(index_elements=["chain_key"])
        )
        return session.execute(stmt).scalar_one()
    head = AuditChainHead(chain_key=chain_key, seq=0, hash=GENESIS_HASH)
    session.add(head)
    session.flush()
    return head


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    case_id: uuid.UUID | None = None,
    victim_id: uuid.UUID | None = None,
    entity_type: str | None = None,
    entity_id: uuid.UUID | None = None,
    fields: Iterable[str] = (),
    details: Mapping[str, Any] | None = None,
    chain_key: str | None = None,
    occurred_at: datetime | None = None,
) -> AuditEvent:
    """Append one event to its chain. Call inside the transaction of the change it records."""
    detail_dict = dict(details or {})
    _check_detail(detail_dict)
    key = chain_key or chain_key_for(case_id=case_id, victim_id=victim_id, actor=actor)
    head = _lock_head(session, key)
    event = AuditEvent(
        chain_key=key,
        seq=head.seq + 1,
        occurred_at=occurred_at or utcnow(),
        action=action,
        actor_user_id=actor.user_id,
        actor_role=actor.role,
        actor_agency_id=actor.agency_id,
        case_id=case_id,
        victim_id=victim_id,
        entity_type=entity_type,
        entity_id=entity_id,
        fields=sorted(set(fields)),
        details=detail_dict,
        request_id=request_id_var.get(),
        prev_hash=head.hash,
        hash="",
    )
    event.hash = chain_hash(head.hash, event)
    head.seq, head.hash = event.seq, event.hash
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class BrokenLink:
    chain_key: str
    seq: int
    event_id: uuid.UUID | None
    problem: str


@dataclass(frozen=True)
class VerifyReport:
    chains: int
    events: int
    broken: list[BrokenLink]

    @property
    def ok(self) -> bool:
        return not self.broken


def verify_chain_events(
    chain_key: str, events: Sequence[AuditEvent], head: AuditChainHead | None
) -> BrokenLink | None:
    prev = GENESIS_HASH
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            return BrokenLink(chain_key, expected_seq, event.id, f"event {expected_seq} is missing")
        if event.prev_hash != prev:
            return BrokenLink(chain_key, event.seq, event.id, "previous-hash link does not match")
        if chain_hash(prev, event) != event.hash:
            return BrokenLink(
                chain_key, event.seq, event.id, "event content does not match its hash"
            )
        prev = event.hash
    if head is not None and (head.seq != len(events) or head.hash != prev):
        return BrokenLink(
            chain_key, len(events) + 1, None, "chain was truncated after its last event"
        )
    return None


def verify_chains(session: Session, chain_keys: Iterable[str] | None = None) -> VerifyReport:
    """Recompute every chain (or the given ones); report the first broken link of each."""
    heads = {h.chain_key: h for h in session.scalars(select(AuditChainHead))}
    keys = sorted(set(chain_keys) if chain_keys is not None else set(heads))
    if chain_keys is None:
        keys = sorted(set(keys) | set(session.scalars(select(AuditEvent.chain_key).distinct())))
    broken: list[BrokenLink] = []
    total = 0
    for key in keys:
        events = list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.chain_key == key).order_by(AuditEvent.seq)
            )
        )
        total += len(events)
        link = verify_chain_events(key, events, heads.get(key))
        if link is not None:
            broken.append(link)
    return VerifyReport(chains=len(keys), events=total, broken=broken)


def case_timeline(session: Session, case_id: uuid.UUID) -> list[AuditEvent]:
    stmt = (
        select(AuditEvent).where(AuditEvent.chain_key == f"case:{case_id}").order_by(AuditEvent.seq)
    )
    return list(session.scalars(stmt))
