"""Argon2id password hashing (pwdlib), length >= 12, no composition rules, common list refused."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MIN_LENGTH = 12
MAX_LENGTH = 256
_COMMON_LIST = Path(__file__).with_name("common_passwords.txt")

_hasher = PasswordHash((Argon2Hasher(),))
# A hash to verify against when the user does not exist, so timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash("passage-dummy-password-for-timing")


@lru_cache
def _common_passwords() -> frozenset[str]:
    return frozenset(
        line.strip().casefold() for line in _COMMON_LIST.read_text().splitlines() if line.strip()
    )


def password_problems(password: str, *, username: str | None = None) -> list[str]:
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"use at most {MAX_LENGTH} characters")
    folded = password.casefold()
    if folded in _common_passwords() or (username and username.casefold() in folded):
        problems.append("this password is too common or contains your user name; choose another")
    return problems


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, stored_hash: str | None) -> tuple[bool, str | None]:
    """(valid, new hash if the stored one should be upgraded)."""
    if stored_hash is None:
        _hasher.verify(password, _DUMMY_HASH)
        return False, None
    return _hasher.verify_and_update(password, stored_hash)
