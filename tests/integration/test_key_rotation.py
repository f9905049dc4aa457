"""Key rotation cannot mislabel, resumes instead of piling up keys, and retirement never
destroys a KEK that still wraps anything (issue 10, finding 1)."""

from __future__ import annotations

import secrets
import uuid

import pytest
from sqlalchemy import select

from app.crypto.envelope import data_key_aad
from app.crypto.errors import KeyFileError
from app.crypto.keyring import FileKeyRing
from app.crypto.models import DataKey
from app.crypto.rotation import RotationIncomplete, retire, rotate
from app.crypto.service import KeyService
from tests.builders import registration


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
    assert result.resumed and result.added_kid is None and result.active_kid == new
    assert result.relabelled == {"victim_data_keys": 1}
    with live.session() as s:
        assert s.scalars(select(DataKey.kek_kid).where(DataKey.victim_id == victim_id)).one() == new
    retire(live.session, keys, old, grace_seconds=0)
    body = s_cache_free.get(f"/api/v1/cases/{created['id']}").json()
    assert body["victim"]["family_name"] == "Mislabelled"


def test_an_unfinished_rotation_is_resumed_and_never_adds_a_second_new_key(live) -> None:
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
    assert result.resumed and result.added_kid is None
    assert result.rewrapped == {"victim_data_keys": 3}
    assert [r.kid for r in keys.keyring.records()] == [old, new]  # no third key

    again = rotate(live.session, keys, batch_size=2)  # complete now: a real rotation
    assert not again.resumed and again.added_kid not in (None, old, new)
    assert again.rewrapped == {"victim_data_keys": 3}


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
        retire(live.session, keys, old, grace_seconds=0)
    assert (live.keys_dir / f"kek-{old}.key").exists()


def test_retire_waits_out_late_writers_and_rewraps_them(live) -> None:
    """A key wrapped under the old KEK that commits after the rotation's last batch."""
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
    slept: list[float] = []
    retire(live.session, keys, old, grace_seconds=3600, sleep=slept.append)
    assert slept and slept[0] > 3500  # it waited for the grace period first
    assert not (live.keys_dir / f"kek-{old}.key").exists()
    fresh = live.api(user)
    assert fresh.get(f"/api/v1/cases/{created['id']}").json()["victim"]["family_name"] == "Late"
    with pytest.raises(KeyFileError, match="active"):
        retire(live.session, keys, keys.keyring.active_kid, grace_seconds=0)
