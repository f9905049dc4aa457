"""KEK rotation and retirement over every kind of wrapped key, resumable and never lossy.

`rotate` first finishes whatever an earlier rotation left under older KEKs; only when every
wrapped key of every kind is under the active KEK does it add a new one. A rotation that
stops part-way (a crash, a key no KEK opens) is resumed by running it again, and never adds a
key on top of an unfinished one.

`retire` destroys a KEK file only when nothing wraps under it any more. A request that
wrapped a key just before the rotation may commit a moment after the rotation's last batch,
so retirement waits until the KEK has been inactive for a grace period, re-wraps such late
arrivals, and counts again just before it destroys the file.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.crypto.errors import KeyFileError
from app.crypto.service import KeyService, RewrapReport

SessionFactory = Callable[[], Session]


class RotationIncomplete(Exception):
    """Some wrapped keys could not be opened by any KEK; nothing was added or destroyed."""

    def __init__(self, message: str, unreadable: dict[str, int]) -> None:
        super().__init__(message)
        self.unreadable = unreadable


@dataclass
class RotationResult:
    active_kid: str
    added_kid: str | None
    resumed: bool
    rewrapped: dict[str, int] = field(default_factory=dict)
    relabelled: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)

    def absorb(self, batch: RewrapReport) -> None:
        for target, counts in (
            (self.rewrapped, batch.rewrapped),
            (self.relabelled, batch.relabelled),
            (self.unreadable, batch.unreadable),
        ):
            for kind, count in counts.items():
                target[kind] = target.get(kind, 0) + count


def rewrap_all(
    sessions: SessionFactory,
    keys: KeyService,
    result: RotationResult,
    *,
    batch_size: int,
    only_kid: str | None = None,
) -> None:
    """Re-wrap, one committed batch at a time, until no readable key is left behind."""
    skip: set[uuid.UUID] = set()
    while True:
        with sessions() as session, session.begin():
            batch = keys.rewrap_batch(session, batch_size=batch_size, only_kid=only_kid, skip=skip)
        result.absorb(batch)
        if batch.total == 0 and not batch.unreadable:
            return


def pending_rewrap(sessions: SessionFactory, keys: KeyService) -> dict[str, int]:
    """Wrapped keys (all kinds) under a KEK other than the active one, per KEK id."""
    active = keys.keyring.active_kid
    with sessions() as session:
        in_use = keys.keys_in_use(session)
    return {kid: n for kid, n in in_use.items() if kid not in (active, "plain") and n}


def rotate(sessions: SessionFactory, keys: KeyService, *, batch_size: int = 500) -> RotationResult:
    """Finish an unfinished rotation, or add a KEK and re-wrap every wrapped key under it."""
    keys.keyring.reload()
    resumed = bool(pending_rewrap(sessions, keys))
    result = RotationResult(active_kid=keys.keyring.active_kid, added_kid=None, resumed=resumed)
    if resumed:
        rewrap_all(sessions, keys, result, batch_size=batch_size)
        if result.unreadable:
            raise RotationIncomplete(_unreadable_message(result.unreadable), result.unreadable)
        return result
    result.added_kid = result.active_kid = keys.keyring.add_key()
    rewrap_all(sessions, keys, result, batch_size=batch_size)
    if result.unreadable:
        raise RotationIncomplete(_unreadable_message(result.unreadable), result.unreadable)
    return result


def retire(
    sessions: SessionFactory,
    keys: KeyService,
    kid: str,
    *,
    grace_seconds: float = 60.0,
    batch_size: int = 500,
    sleep: Callable[[float], None] = time.sleep,
) -> RotationResult:
    """Destroy a KEK once nothing is wrapped by it (refused otherwise, with the counts)."""
    ring = keys.keyring
    ring.reload()
    replaced = ring.replaced_at(kid)
    if replaced is None:
        raise KeyFileError("the active key cannot be retired; rotate first")
    waited = (datetime.now(UTC) - replaced).total_seconds()
    if waited < grace_seconds:
        sleep(grace_seconds - waited)
    result = RotationResult(active_kid=ring.active_kid, added_kid=None, resumed=False)
    # Late arrivals: keys wrapped under `kid` by requests that started before the rotation.
    rewrap_all(sessions, keys, result, batch_size=batch_size, only_kid=kid)
    with sessions() as session:
        left = keys.keys_in_use_by_kind(session)
    still = {kind: counts[kid] for kind, counts in left.items() if counts.get(kid)}
    if still:
        raise RotationIncomplete(
            f"key {kid} still wraps "
            + ", ".join(f"{n} {kind}" for kind, n in sorted(still.items()))
            + "; run 'passage keys rotate' first",
            still,
        )
    ring.retire(kid)
    return result


def _unreadable_message(unreadable: dict[str, int]) -> str:
    return (
        "no usable key opens "
        + ", ".join(f"{n} {kind}" for kind, n in sorted(unreadable.items()))
        + "; nothing was added or destroyed (restore the missing key file, then run again)"
    )
