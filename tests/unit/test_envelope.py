"""Field envelopes and key ring: real AES-GCM, real files."""

from __future__ import annotations

import os
import uuid

import pytest

from app.crypto.envelope import FORMAT_VERSION, FieldCipher, new_data_key, parse_header
from app.crypto.errors import KeyFileError, SealedValueIntegrityError, UnknownKeyError
from app.crypto.keyring import FileKeyRing


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher(uuid.uuid4(), new_data_key())


def test_round_trip_of_each_value_type(cipher: FieldCipher) -> None:
    row = uuid.uuid4()
    for value in ["Élodie", 17, True, ["SN", "FR"], {"type": "passport", "number": "A123"}]:
        assert cipher.open("victims", "x", row, cipher.seal("victims", "x", row, value)) == value
    assert cipher.seal("victims", "x", row, None) is None


def test_ten_thousand_seals_use_distinct_nonces_and_carry_version_and_key_id(
    cipher: FieldCipher,
) -> None:
    row = uuid.uuid4()
    nonces = set()
    for _ in range(10_000):
        blob = cipher.seal("victims", "family_name", row, "Diallo")
        assert blob is not None
        header = parse_header(blob)
        assert header.version == FORMAT_VERSION
        assert header.data_key_id == cipher.data_key_id
        nonces.add(header.nonce)
    assert len(nonces) == 10_000


@pytest.mark.parametrize(
    ("table", "column", "same_row"),
    [
        ("victims", "family_name", False),
        ("victims", "given_name", True),
        ("cases", "family_name", True),
    ],
)
def test_value_moved_to_another_row_or_column_fails(
    cipher: FieldCipher, table: str, column: str, same_row: bool
) -> None:
    row = uuid.uuid4()
    blob = cipher.seal("victims", "family_name", row, "Diallo")
    target_row = row if same_row else uuid.uuid4()
    with pytest.raises(SealedValueIntegrityError, match="integrity check"):
        cipher.open(table, column, target_row, blob)


def test_tampered_ciphertext_and_foreign_key_id_fail(cipher: FieldCipher) -> None:
    row = uuid.uuid4()
    blob = bytearray(cipher.seal("victims", "phone", row, "+221 77 000 00 00") or b"")
    blob[-1] ^= 1
    with pytest.raises(SealedValueIntegrityError):
        cipher.open("victims", "phone", row, bytes(blob))
    other = FieldCipher(uuid.uuid4(), new_data_key())
    with pytest.raises(SealedValueIntegrityError, match="another data key"):
        other.open("victims", "phone", row, cipher.seal("victims", "phone", row, "x"))


def test_key_files_are_created_0600_and_group_readable_ones_refused(tmp_path) -> None:
    ring = FileKeyRing.initialise(tmp_path / "keys")
    for path in (tmp_path / "keys").glob("*.key"):
        assert path.stat().st_mode & 0o777 == 0o600
    key_file = next((tmp_path / "keys").glob("kek-*.key"))
    os.chmod(key_file, 0o640)
    with pytest.raises(KeyFileError, match="0600"):
        ring.reload()


def test_rotation_keeps_old_kid_usable_until_retired(tmp_path) -> None:
    ring = FileKeyRing.initialise(tmp_path / "keys")
    old = ring.active_kid
    kid, wrapped = ring.wrap(b"k" * 32, lambda _kid: b"aad")
    new = ring.add_key()
    assert ring.active_kid == new != old
    assert ring.unwrap(kid, wrapped, b"aad") == b"k" * 32
    ring.retire(old)
    assert not (tmp_path / "keys" / f"kek-{old}.key").exists()
    with pytest.raises(UnknownKeyError):
        ring.unwrap(kid, wrapped, b"aad")
    with pytest.raises(KeyFileError, match="active"):
        ring.retire(new)
