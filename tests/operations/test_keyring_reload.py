"""A running worker learns a KEK that another process added (`passage keys rotate`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.crypto.errors import UnknownKeyError
from app.crypto.keyring import MANIFEST, FileKeyRing
from tests.conftest import copy_keys

AAD = b"victim:1"


def test_unwrap_under_a_kek_added_elsewhere_reloads_the_ring(
    keys_dir: Path, tmp_path: Path
) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    worker = FileKeyRing(keys)  # loaded at start-up, before the rotation
    rotator = FileKeyRing(keys)  # the `passage keys rotate` process
    new_kid = rotator.add_key()
    kid, wrapped = rotator.wrap(b"k" * 32, lambda _kid: AAD)
    assert kid == new_kid and new_kid not in worker.usable_kids()

    assert worker.unwrap(kid, wrapped, AAD) == b"k" * 32
    assert new_kid in worker.usable_kids()
    assert worker.active_kid == new_kid
    assert worker.reload_if_changed() is False  # nothing changed since


def test_wrap_uses_the_kek_that_is_active_now(keys_dir: Path, tmp_path: Path) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    worker = FileKeyRing(keys)
    new_kid = FileKeyRing(keys).add_key()
    kid, _ = worker.wrap(b"k" * 32, lambda _kid: AAD)
    assert kid == new_kid


def test_an_unknown_kid_still_fails_and_a_broken_manifest_keeps_the_ring(
    keys_dir: Path, tmp_path: Path
) -> None:
    keys = copy_keys(keys_dir, tmp_path / "keys")
    worker = FileKeyRing(keys)
    kid, wrapped = worker.wrap(b"k" * 32, lambda _kid: AAD)
    with pytest.raises(UnknownKeyError):
        worker.unwrap("20000101000000dead", wrapped, AAD)

    # A manifest naming a key file that does not exist: the worker keeps serving.
    manifest = keys / MANIFEST
    data = json.loads(manifest.read_text())
    data["keys"].append({"kid": "20990101000000beef", "created_at": "2099-01-01T00:00:00+00:00"})
    data["active_kid"] = "20990101000000beef"
    tmp = keys / "manifest.tmp"
    tmp.write_text(json.dumps(data))
    os.chmod(tmp, 0o600)
    os.replace(tmp, manifest)
    assert worker.reload_if_changed() is False
    assert worker.unwrap(kid, wrapped, AAD) == b"k" * 32
    assert worker.wrap(b"k" * 32, lambda _kid: AAD)[0] == kid
