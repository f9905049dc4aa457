"""Key rotation cannot mislabel, resumes instead of piling up keys, and retirement never
destroys a KEK that still wraps anything (issue 10, finding 1)."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import uuid

import pytest
from sqlalchemy import select

from app.cases import service
from app.cases.schemas import RegistrationIn
from app.crypto.envelope import data_key_aad
from app.crypto.errors import KeyFileError
from app.crypto.keyring import FileKeyRing
from app.crypto.models import DataKey
from app.crypto.rotation import RotationIncomplete, retire, rotate
from app.crypto.service import KeyService
from app.errors import ServiceUnavailable
from tests.builders import registration
from tests.operations.support import caseworker


def _register(live, client, name: str) -> dict:
    created = client.post("/api/v1/cases", json=registration(family_name=name))
    assert created.status_code == 201, created.text
    return created.json()


def test_a_registration_right_after_a_rotation_elsewhere_stays_readable(live) -> None:
    """The worker loaded the ring before `passage keys rotate` ran in another process."""
    user, _ = live.user("ngo_caseworker", "ngo")
    client = live.api(user)
    _register(live, client, "Before")  # the worker's ring is loaded and in use
    rotated_to = FileKeyRing(live.keys_dir).add_key()  # another process

    created = _register(live, client, "After")
    with live.session() as s:
        row = s.scalars(
            select(DataKey).where(DataKey.victim_id == uuid.UUID(created["victim_id"]))
        ).one()
    assert row.kek_kid == rotated_to  # the id that wrapped is the id recorded
    # Read back by this worker and by a process started now (fresh ring, fresh cache).
    assert client.get(f"/api/v1/cases/{created['id']}").json()["victim"]["family_name"] == "After"
    fresh = KeyService(FileKeyRing(live.keys_dir))
    with live.session() as s:
        codec = fresh.codec_for(s, uuid.UUID(created["victim_id"]))
        assert codec.data_key_id == row.id


def test_keys_mislabelled_by_earlier_versions_are_read_and_relabelled(live) -> None:
    """Earlier versions recorded the old KEK id for a key the new KEK wrapped."""
    user, _ = live.user("ngo_caseworker", "ngo")
    client = live.api(user)
    created = _register(live, client, "Mislabelled")
    victim_id = uuid.UUID(created["victim_id"])
    keys = live.ctx.keys
    old = keys.keyring.active_kid
    with live.session() as s, s.begin():
        row = s.scalars(select(DataKey).where(DataKey.victim_id == victim_id)).one()
        dek = keys.keyring.unwrap(old, row.wrapped_key, data_key_aad(old, row.id, victim_id))
        new = keys.keyring.add_key()
        # What the old code stored: label `old`, additional data for `old`, wrapped by `new`.
        _, row.wrapped_key = keys.keyring.wrap(
            dek, lambda _kid: data_key_aad(old, row.id, victim_id)
        )
        row.kek_kid = old
    s_cache_free = live.api(user)
    live.ctx.keys.keyring.reload()
    with live.session() as s:
        s.info.clear()
        assert keys.codec_for(s, victim_id) is not None  # read through the fallback

    result = rotate(live.session, keys, batch_size=10)
    assert result.resumed and result.relabelled == {"victim_data_keys": 1}
    assert result.added_kid not in (None, old, new) and result.active_kid == result.added_kid
    with live.session() as s:
        stored = s.scalars(select(DataKey.kek_kid).where(DataKey.victim_id == victim_id)).one()
        assert stored == result.active_kid
    retire(live.session, keys, old)
    retire(live.session, keys, new)
    body = s_cache_free.get(f"/api/v1/cases/{created['id']}").json()
    assert body["victim"]["family_name"] == "Mislabelled"


def test_an_unfinished_rotation_is_finished_before_a_new_key_is_added(live) -> None:
    user, _ = live.user("ngo_caseworker", "ngo")
    client = live.api(user)
    for i in range(3):
        _register(live, client, f"Family{i}")
    keys = live.ctx.keys
    old = keys.keyring.active_kid
    new = keys.keyring.add_key()  # a rotation that stopped right after adding its key
    with live.session() as s:
        assert old in keys.keys_in_use_by_kind(s)["victim_data_keys"]

    result = rotate(live.session, keys, batch_size=2)
    assert result.resumed and result.added_kid not in (None, old, new)
    assert result.rewrapped == {"victim_data_keys": 6}  # 3 finished, then 3 to the new key
    assert [r.kid for r in keys.keyring.records()] == [old, new, result.added_kid]
    with live.session() as s:
        assert keys.keys_in_use(s) == {result.added_kid: 3}


def test_a_key_no_kek_opens_stops_the_rotation_before_it_adds_anything(live) -> None:
    user, _ = live.user("ngo_caseworker", "ngo")
    client = live.api(user)
    created = _register(live, client, "Damaged")
    keys = live.ctx.keys
    old = keys.keyring.active_kid
    new = keys.keyring.add_key()
    with live.session() as s, s.begin():
        row = s.scalars(
            select(DataKey).where(DataKey.victim_id == uuid.UUID(created["victim_id"]))
        ).one()
        row.wrapped_key = row.wrapped_key[:-1] + bytes([row.wrapped_key[-1] ^ 1])
    _register(live, client, "Healthy")

    for _ in range(2):  # running it again resumes: still no new key, same refusal
        with pytest.raises(RotationIncomplete) as refused:
            rotate(live.session, keys, batch_size=1)
        assert refused.value.unreadable == {"victim_data_keys": 1}
        assert [r.kid for r in keys.keyring.records()] == [old, new]
    with pytest.raises(RotationIncomplete, match="still wraps 1 victim_data_keys"):
        retire(live.session, keys, old)
    assert (live.keys_dir / f"kek-{old}.key").exists()


def test_retire_rewraps_a_late_writer_committed_after_the_rotation(live) -> None:
    """A key wrapped under the old KEK that committed after the rotation's last batch."""
    user, _ = live.user("ngo_caseworker", "ngo")
    client = live.api(user)
    created = _register(live, client, "Late")
    keys = live.ctx.keys
    old = keys.keyring.active_kid
    result = rotate(live.session, keys)
    assert result.added_kid is not None
    victim_id = uuid.UUID(created["victim_id"])
    with live.session() as s, s.begin():  # the late writer: wrapped before the swap
        row = s.scalars(select(DataKey).where(DataKey.victim_id == victim_id)).one()
        dek = keys.keyring.unwrap(
            row.kek_kid, row.wrapped_key, data_key_aad(row.kek_kid, row.id, victim_id)
        )
        state = FileKeyRing(live.keys_dir)._state
        nonce = secrets.token_bytes(12)
        row.wrapped_key = nonce + state.keys[old].encrypt(
            nonce, dek, data_key_aad(old, row.id, victim_id)
        )
        row.kek_kid = old
    retired = retire(live.session, keys, old)
    assert retired.rewrapped == {"victim_data_keys": 1}
    assert not (live.keys_dir / f"kek-{old}.key").exists()
    fresh = live.api(user)
    assert fresh.get(f"/api/v1/cases/{created['id']}").json()["victim"]["family_name"] == "Late"
    with pytest.raises(KeyFileError, match="active"):
        retire(live.session, keys, keys.keyring.active_kid)


@pytest.mark.postgres_only
def test_retire_waits_for_a_transaction_that_wrapped_under_the_old_key(live) -> None:
    """The writer wrapped under the old KEK before the rotation and commits after it."""
    actor = caseworker(live)
    keys = live.ctx.keys
    old = keys.keyring.active_kid
    writer = live.session()
    writer.begin()
    case = service.register(
        writer, live.ctx, actor, RegistrationIn.model_validate(registration(family_name="Slow"))
    )
    writer.flush()
    victim_id = case.victim_id
    rotate(live.session, keys)  # cannot see the uncommitted key: it stays under `old`

    outcome: list[object] = []
    retiring = threading.Thread(
        target=lambda: outcome.append(retire(live.session, FreshKeys(live), old))
    )
    retiring.start()
    retiring.join(timeout=1.5)
    assert retiring.is_alive()  # waiting for the writer's hold on the old key
    assert (live.keys_dir / f"kek-{old}.key").exists()
    writer.commit()
    writer.close()
    retiring.join(timeout=30)
    assert not retiring.is_alive() and outcome
    assert not (live.keys_dir / f"kek-{old}.key").exists()
    with live.session() as s:
        assert s.scalars(select(DataKey.kek_kid).where(DataKey.victim_id == victim_id)).one() != old
        assert FreshKeys(live).codec_for(s, victim_id) is not None


def test_a_process_with_a_stale_key_ring_never_commits_under_a_key_being_retired(
    live,
) -> None:
    actor = caseworker(live)
    stale = FreshKeys(live)  # loaded now; its reloads will fail below
    old = stale.keyring.active_kid
    operator = FreshKeys(live)
    new = operator.keyring.add_key()
    operator.keyring.mark_retiring(old)
    (live.keys_dir / f"kek-{new}.key").chmod(0o640)  # a reload now fails (loose permissions)
    stale_ctx = dataclasses.replace(live.ctx, keys=stale)
    data = RegistrationIn.model_validate(registration(family_name="Stale"))
    with (
        live.session() as s,
        s.begin(),
        pytest.raises(ServiceUnavailable, match="key ring is out of date"),
    ):
        service.register(s, stale_ctx, actor, data)
    (live.keys_dir / f"kek-{new}.key").chmod(0o600)
    created = _register(live, live.api(live.user("ngo_caseworker", "ngo")[0]), "Fresh")
    with live.session() as s:
        kid = s.scalars(
            select(DataKey.kek_kid).where(DataKey.victim_id == uuid.UUID(created["victim_id"]))
        ).one()
    assert kid == new


def FreshKeys(live) -> KeyService:
    """The key service of another process started now (its own ring, its own caches)."""
    return KeyService(FileKeyRing(live.keys_dir))
