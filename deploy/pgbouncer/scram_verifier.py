#!/usr/bin/env python3
"""Print a PgBouncer userlist.txt line holding a PostgreSQL SCRAM-SHA-256 verifier.

    python3 deploy/pgbouncer/scram_verifier.py passage_app >> userlist.txt

The password is read from the terminal (twice) or, when stdin is not a terminal, from
the first line of stdin. Only the verifier is printed; the password never is.

Use the SAME verifier in two places, so PgBouncer can log in to PostgreSQL with the
client's SCRAM keys (no plain password is stored anywhere but the app's database URL):
  1. PgBouncer's auth_file (userlist.txt): "passage_app" "SCRAM-SHA-256$4096:..."
  2. PostgreSQL:  ALTER ROLE passage_app PASSWORD 'SCRAM-SHA-256$4096:...';
     (deploy/compose/initdb/10-passage-roles.sh does this from the userlist on first start)

Format (PostgreSQL, RFC 5802/7677): SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
Passwords are limited to printable ASCII so PostgreSQL's SASLprep normalisation is the
identity and the verifier matches what the server would compute.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import secrets
import sys

ITERATIONS = 4096  # PostgreSQL's default scram_iterations
SALT_BYTES = 16
MIN_PASSWORD_LENGTH = 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def scram_keys(password: str, salt: bytes, iterations: int = ITERATIONS) -> tuple[bytes, bytes]:
    """Return (StoredKey, ServerKey) for a password, per RFC 5802."""
    if not password or not all(0x21 <= ord(ch) <= 0x7E for ch in password):
        raise ValueError("use a non-empty password of printable ASCII without spaces")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("ascii"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    stored_key, server_key = scram_keys(password, salt, iterations)
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def userlist_line(username: str, password: str) -> str:
    if '"' in username or not username:
        raise ValueError("invalid user name")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"use at least {MIN_PASSWORD_LENGTH} characters (openssl rand -hex 32)")
    return f'"{username}" "{verifier(password)}"'


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise SystemExit("passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("username", help="PostgreSQL role, e.g. passage_app")
    args = parser.parse_args()
    try:
        sys.stdout.write(userlist_line(args.username, _read_password()) + "\n")
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc


if __name__ == "__main__":
    main()
