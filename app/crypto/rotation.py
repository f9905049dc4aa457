"""KEK rotation and retirement over every kind of wrapped key, resumable and never lossy.

`rotate` first finishes whatever an earlier rotation left under older KEKs; only when every
wrapped key of every kind is under the active KEK does it add a new one. A rotation that
stops part-way (a crash, a key no KEK opens) is resumed by running it again, and never adds a
key on top of one it could not finish.

`retire` destroys a KEK file only when nothing wraps under it any more. A request that
wrapped a key just before the rotation may commit a moment after the rotation's last batch:
retirement marks the KEK as being retired, waits for every transaction that holds it,
re-wraps what they left under it, and counts again just before it destroys the file.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from app.crypto.service import KeyService, RewrapReport, hold_kek
from app.crypto.wrapped import PLAIN_KID

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
    return {kid: n for kid, n in in_use.items() if kid not in (active, PLAIN_KID) and n}


def rotate(sessions: SessionFactory, keys: KeyService, *, batch_size: int = 500) -> RotationResult:
    """Add a KEK and re-wrap every wrapped key under it.

    What an earlier rotation left under older KEKs is finished first; if some key opens
    under no usable KEK, nothing is added (so failed runs never pile up keys), and running
    it again resumes.
    """
    keys.keyring.reload()
    resumed = bool(pending_rewrap(sessions, keys))
    result = RotationResult(active_kid=keys.keyring.active_kid, added_kid=None, resumed=resumed)
    if resumed:
        rewrap_all(sessions, keys, result, batch_size=batch_size)
        if result.unreadable:
            raise RotationIncomplete(_unreadable_message(result.unreadable), result.unreadable)
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
    batch_size: int = 500,
) -> RotationResult:
    """Destroy a KEK once nothing is wrapped by it (refused otherwise, with the counts).

    1. The manifest marks the KEK as being retired: from then on no process commits a key
       wrapped by it (`KeyService.wrap_pinned` checks the manifest on disk after taking
       its hold on the KEK, and wraps again under the active KEK).
    2. One transaction takes the KEK exclusively, so it waits for every transaction that
       wrapped a key under it before step 1 (they hold it shared until they end), then
       re-wraps whatever they committed, and commits.
    3. Counted again; only if nothing of any kind is left is the key file destroyed.
    """
    ring = keys.keyring
    ring.mark_retiring(kid)  # refuses the active key and unknown ids
    result = RotationResult(active_kid=ring.active_kid, added_kid=None, resumed=False)
    skip: set[uuid.UUID] = set()
    with sessions() as session, session.begin():
        hold_kek(session, kid, exclusive=True)
        while True:
            batch = keys.rewrap_batch(session, batch_size=batch_size, only_kid=kid, skip=skip)
            result.absorb(batch)
            if batch.total == 0 and not batch.unreadable:
                break
    with sessions() as session:
        left = keys.keys_in_use_by_kind(session)
    still = {kind: counts[kid] for kind, counts in left.items() if counts.get(kid)}
    if still:
        raise RotationIncomplete(
            f"key {kid} still wraps "
            + ", ".join(f"{n} {kind}" for kind, n in sorted(still.items()))
            + " that no usable key opens; nothing was destroyed",
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
