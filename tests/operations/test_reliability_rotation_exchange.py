"""R13 for the exchange: `passage keys rotate` and `keys retire` (separate processes, as
operators run them) while this instance RECEIVES transnational packages on two real uvicorn
workers, then a restart. Every package the server acknowledged stays readable.

Each received referral gets its own data key (`ExchangeKey`) wrapped by the KEK ring; its
signed token (the evidence) and its attachments are sealed under that key, and a status
update on the thread seals its evidence under the same key. Before the fix, rotation left
exchange keys under the old KEK and retirement destroyed it: received packages and their
signed evidence answered 500. Here two senders play the partner over real HTTP for the
whole window (2 s before the rotation, through it, until the retirement has returned),
then the server is restarted and every acknowledged package is opened twice: directly
(a fresh key ring and `exchange_codec` in a system session) and through the focal point's
API on the new workers (package content, signed evidence, attachment).
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.context import build_context
from app.crypto.keyring import FileKeyRing
from app.db.rls import system_session
from app.db.session import Database
from app.operations.liveserver import PASSWORD, Server, running_server, start_server
from app.transnational.keys import exchange_codec, instance_keys
from app.transnational.models import Attachment, Evidence, ExchangeKey, ExchangeMessage
from app.transnational.transport import MESSAGES_PATH
from tests.conftest import Live, World, copy_keys
from tests.operations.test_reliability_support import NO_LIMITS, reliability
from tests.transnational import craft
from tests.transnational.conftest import contacts
from tests.transnational.single import INSTANCE_ID, PARTNER_ID

pytestmark = [reliability, pytest.mark.postgres_only]

PASSAGE = str(Path(sys.executable).parent / "passage")
API = "/api/v1/transnational"
PNG = b"\x89PNG\r\n\x1a\n" + b"fictional scan of a travel document " * 20


def _passage(app_url: str, keys: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    env.update(
        {
            "PASSAGE_ENVIRONMENT": "test",
            "PASSAGE_DATABASE_URL": app_url,
            "PASSAGE_KEYS_DIR": str(keys),
        }
    )
    return subprocess.run(
        [PASSAGE, *argv], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@dataclass(frozen=True)
class Partner:
    """What the test holds to play the partner, and who reads on this side."""

    sign_private: str
    sign_kid: str
    own_enc_public: str
    own_enc_kid: str
    focal_username: str


def _configure(live: Live) -> Partner:
    """This instance's exchange identity and a partner whose key pairs the test holds,
    through the admin API of an in-process app on the same database and keys."""
    with live.session() as s, s.begin():  # committed before the API looks for them
        world = World(s, live.password_hash)
        office = world.agency("coordinator_office", name="Focal point PT", country="PT")
        admin = world.user("admin", office)
        focal = world.user("focal_point", office)
        office_id, focal_username = office.id, focal.username
    client = live.api(admin)
    put = client.put(
        f"{API}/instance",
        json={
            "instance_id": INSTANCE_ID,
            "country": "PT",
            "institution": "National referral mechanism PT",
            "focal_point_agency_id": str(office_id),
        },
    )
    assert put.status_code == 200, put.text
    created = client.post(
        f"{API}/partners",
        json={
            "country": "SN",
            "institution": "Cellule nationale de lutte contre la traite",
            "instance_id": PARTNER_ID,
            "base_url": "http://127.0.0.1:9",
            "working_languages": ["fr"],
            "contacts": contacts(),
        },
    )
    assert created.status_code == 201, created.text
    sign_private, sign_public = craft.ec_pair()
    _, enc_public = craft.rsa_pair()
    for use, pem in (("sig", sign_public), ("enc", enc_public)):
        pinned = client.post(
            f"{API}/partners/{created.json()['id']}/keys", json={"use": use, "pem": pem}
        )
        assert pinned.status_code == 201, pinned.text
    client.client.close()
    own = instance_keys(live.ctx)  # creates the encryption key in the copied keys dir
    return Partner(
        sign_private=sign_private,
        sign_kid=craft.kid_of(sign_public, "sig"),
        own_enc_public=own.encryption_public_pem,
        own_enc_kid=own.encryption_kid,
        focal_username=focal_username,
    )


@dataclass
class Sent:
    """A package the server acknowledged (200 with a signed receipt)."""

    msg: str  # referral | status
    jti: str
    thread: str
    token: str  # the signed token, as the evidence must hold it
    given_name: str | None = None
    attachment: bytes | None = None
    acked_at: float = 0.0  # time.monotonic() when the receipt came back


@dataclass
class Ledger:
    acked: list[Sent] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int, problem: str | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
            if problem is not None and len(self.problems) < 20:
                self.problems.append(problem)


def _package(p: Partner, rng: random.Random, mine: list[Sent], n: int) -> tuple[Sent, dict]:
    """A fresh referral (every third with a PNG attachment) or, one time in four, a status
    update on one of this sender's acknowledged threads (its evidence is sealed under that
    thread's existing data key)."""
    referrals = [s for s in mine if s.msg == "referral"]
    if referrals and rng.random() < 0.25:
        thread = rng.choice(referrals).thread
        now = int(time.time())
        claims = {
            "iss": PARTNER_ID,
            "aud": INSTANCE_ID,
            "iat": now,
            "exp": now + 3600,
            "jti": str(uuid.uuid4()),
            "passage": 1,
            "msg": "status",
            "thread": thread,
            "body": {"code": "in_review"},
        }
        token = craft.sign(claims, p.sign_private, kid=p.sign_kid, typ="update+jwt")
        sent = Sent("status", claims["jti"], thread, token)
        document = {
            "message": craft.encrypt(
                token.encode(), p.own_enc_public, kid=p.own_enc_kid, cty="update+jwt"
            ),
            "attachments": [],
        }
        return sent, document
    given = f"Amina{n}-{uuid.uuid4().hex[:6]}"
    claims = craft.referral_claims(PARTNER_ID, INSTANCE_ID, given_name=given)
    attachment = PNG + uuid.uuid4().bytes if n % 3 == 0 else None
    parts = []
    if attachment is not None:
        claims["body"]["attachments"] = [
            {
                "id": str(uuid.uuid4()),
                "media_type": "image/png",
                "size": len(attachment),
                "sha256": hashlib.sha256(attachment).hexdigest(),
            }
        ]
        parts = [
            craft.encrypt(attachment, p.own_enc_public, kid=p.own_enc_kid, cty="passage-attachment")
        ]
    token = craft.sign(claims, p.sign_private, kid=p.sign_kid)
    sent = Sent("referral", claims["jti"], claims["thread"], token, given, attachment)
    document = {
        "message": craft.encrypt(token.encode(), p.own_enc_public, kid=p.own_enc_kid),
        "attachments": parts,
    }
    return sent, document


def _send(server: Server, p: Partner, name: str, stop: threading.Event, ledger: Ledger) -> None:
    rng = random.Random(name)
    mine: list[Sent] = []
    n = 0
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        while not stop.is_set():
            n += 1
            sent, document = _package(p, rng, mine, n)
            try:
                response = client.post(MESSAGES_PATH, json=document)
            except httpx.TransportError as exc:
                ledger.count(0, type(exc).__name__)
                continue
            ok = response.status_code == 200 and "receipt" in response.json()
            if ok:
                sent.acked_at = time.monotonic()
                mine.append(sent)
                with ledger.lock:
                    ledger.acked.append(sent)
            ledger.count(response.status_code, None if ok else response.text[:300])


def _mfa_login(base_url: str, username: str) -> httpx.Client:
    """A focal point over real HTTP: password, then TOTP enrolment and verification."""
    client = httpx.Client(base_url=base_url, timeout=30, headers={"Origin": base_url})
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    if response.json()["mfa_required"]:
        enrol = client.post("/api/v1/auth/totp/enrolment")
        assert enrol.status_code == 200, enrol.text
        totp = pyotp.parse_uri(enrol.json()["provisioning_uri"])
        assert isinstance(totp, pyotp.TOTP)
        verified = client.post("/api/v1/auth/totp/verify", json={"code": totp.now()})
        assert verified.status_code == 200, verified.text
        client.headers["X-CSRF-Token"] = verified.json()["csrf_token"]
    return client


@dataclass
class Stored:
    exchange_id: uuid.UUID
    evidence_id: uuid.UUID
    attachment_ids: list[uuid.UUID]


def _open_directly(
    app_url: str, keys: Path, acked: list[Sent]
) -> tuple[dict[str, Stored], list[str], int]:
    """A process-like context started now (key ring read from disk, no cache): open every
    acknowledged package's sealed evidence and attachments.

    Returns where each package is stored, the failures, and how many exchange keys exist."""
    settings = Settings(environment="test", database_url=app_url, keys_dir=keys)
    ctx = build_context(settings)
    database = Database(settings)
    stored: dict[str, Stored] = {}
    failed: list[str] = []
    try:
        with system_session(database.sessionmaker()) as session:
            for sent in acked:
                try:
                    message = session.scalars(
                        select(ExchangeMessage).where(
                            ExchangeMessage.issuer == PARTNER_ID, ExchangeMessage.jti == sent.jti
                        )
                    ).one()
                    assert message.evidence_id is not None
                    evidence = session.get(Evidence, message.evidence_id)
                    assert evidence is not None
                    codec = exchange_codec(session, ctx, message.exchange_id)
                    token = codec.open(
                        "transnational_evidence", "token", evidence.id, evidence.token_sealed
                    )
                    assert token == sent.token, "evidence differs from the signed token"
                    rows = session.scalars(
                        select(Attachment).where(Attachment.message_jti == sent.jti)
                    ).all()
                    for row in rows:
                        content = codec.open(
                            "transnational_attachments", "content", row.id, row.content
                        )
                        assert content is not None
                    if sent.attachment is not None:
                        assert len(rows) == 1, "attachment missing"
                    stored[sent.jti] = Stored(
                        message.exchange_id, evidence.id, [row.id for row in rows]
                    )
                except Exception as exc:  # any failure is an unreadable package
                    failed.append(f"{sent.msg} {sent.jti}: {type(exc).__name__}: {exc}")
            exchange_keys = int(session.scalar(select(func.count()).select_from(ExchangeKey)) or 0)
    finally:
        database.dispose()
    return stored, failed, exchange_keys


def _read_through_api(
    server: Server, username: str, acked: list[Sent], stored: dict[str, Stored]
) -> list[str]:
    """The focal point on the restarted workers: content, signed evidence, attachment."""
    client = _mfa_login(server.base_url, username)
    failed = []
    try:
        for sent in acked:
            where = stored.get(sent.jti)
            if where is None:
                failed.append(f"{sent.jti}: not stored")
                continue
            evidence = client.get(f"{API}/evidence/{where.evidence_id}")
            if evidence.status_code != 200 or evidence.json()["token"] != sent.token:
                failed.append(f"evidence {sent.jti}: {evidence.status_code} {evidence.text[:200]}")
                continue
            if not evidence.json()["signature_valid"]:
                failed.append(f"evidence {sent.jti}: signature not valid")
            if sent.msg != "referral":
                continue
            package = client.get(f"{API}/exchanges/{where.exchange_id}/package")
            if (
                package.status_code != 200
                or package.json()["data"]["victim"].get("given_name") != sent.given_name
            ):
                failed.append(f"package {sent.jti}: {package.status_code} {package.text[:200]}")
                continue
            for attachment_id in where.attachment_ids:
                got = client.get(f"{API}/exchanges/{where.exchange_id}/attachments/{attachment_id}")
                if got.status_code != 200 or got.content != sent.attachment:
                    failed.append(f"attachment {sent.jti}: {got.status_code} {got.text[:200]}")
    finally:
        client.close()
    return failed


def test_rotate_and_retire_while_receiving_exchange_packages_then_restart(
    fresh_db, keys_dir, tmp_path, password_hash
) -> None:
    began = time.monotonic()
    keys = copy_keys(keys_dir, tmp_path / "keys")  # never rotate the session's shared keys
    live = Live(fresh_db, keys, password_hash)
    try:
        partner = _configure(live)
    finally:
        live.close()
    old_kid = FileKeyRing(keys).active_kid
    ledger = Ledger()
    stop = threading.Event()
    with running_server(
        fresh_db.app_url, keys, workers=2, log_dir=tmp_path, extra_env=NO_LIMITS
    ) as server:
        senders = [
            threading.Thread(target=_send, args=(server, partner, f"sender{i}", stop, ledger))
            for i in range(2)
        ]
        for t in senders:
            t.start()
        # At least 2 s, and enough exchange keys that the rotation re-wraps several batches.
        deadline = time.monotonic() + 15
        time.sleep(2)
        while len(ledger.acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        rotate_began = time.monotonic()
        rotated = _passage(fresh_db.app_url, keys, "keys", "rotate", "--batch-size", "5")
        rotate_ended = time.monotonic()
        # Retire while packages still arrive: it waits for transactions holding the old key,
        # re-wraps late arrivals under it, counts again and only then destroys the file.
        retired = _passage(fresh_db.app_url, keys, "keys", "retire", old_kid)
        retire_ended = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for t in senders:
            t.join(timeout=60)
        window_log = server.log_path.read_text(errors="replace")
    assert rotated.returncode == 0, rotated.stderr
    assert retired.returncode == 0, retired.stderr
    assert not (keys / f"kek-{old_kid}.key").exists()
    status = _passage(fresh_db.app_url, keys, "keys", "status")
    assert status.returncode == 0, status.stderr

    # A restart: new workers, a ring read from disk, nothing cached.
    restarted = start_server(
        fresh_db.app_url, keys, workers=2, log_dir=tmp_path, extra_env=NO_LIMITS
    )
    try:
        stored, unreadable, exchange_keys = _open_directly(fresh_db.app_url, keys, ledger.acked)
        api_failed = _read_through_api(restarted, partner.focal_username, ledger.acked, stored)
        restart_log = restarted.log_path.read_text(errors="replace")
    finally:
        restarted.stop()

    lines = {line.split()[0]: line for line in status.stdout.splitlines()}
    states = [line.split()[1] for line in lines.values()]
    new_kid = next(kid for kid, line in lines.items() if line.split()[1] == "active")
    kinds = Counter(s.msg for s in ledger.acked)
    with_attachment = sum(1 for s in ledger.acked if s.attachment is not None)
    phases = Counter(
        "before"
        if s.acked_at < rotate_began
        else "rotate"
        if s.acked_at < rotate_ended
        else "retire"
        if s.acked_at < retire_ended
        else "after"
        for s in ledger.acked
    )
    print(
        f"\n{rotated.stdout.strip()}; {retired.stdout.strip()}\n{status.stdout.strip()}\n"
        f"packages acknowledged during the window: {len(ledger.acked)} "
        f"({kinds['referral']} referrals, {with_attachment} with an attachment, "
        f"{kinds['status']} status updates), answers {dict(ledger.statuses)}; "
        f"acknowledged before the rotation {phases['before']}, during it {phases['rotate']} "
        f"({rotate_ended - rotate_began:.1f} s), during the retirement {phases['retire']} "
        f"({retire_ended - rotate_ended:.1f} s), after it {phases['after']}; "
        f"exchange keys stored: {exchange_keys}; unreadable after restart: "
        f"{len(unreadable)} directly, {len(api_failed)} through the API; "
        f"{time.monotonic() - began:.1f} s"
    )
    assert unreadable == [], unreadable[:5]
    assert api_failed == [], api_failed[:5]
    assert set(ledger.statuses) == {200}, (dict(ledger.statuses), ledger.problems[:3])
    assert states.count("active") == 1 and states.count("retired") == 1, status.stdout
    assert lines[old_kid].split()[1] == "retired", status.stdout
    assert f" {exchange_keys} exchange_keys" in lines[new_kid], status.stdout
    assert exchange_keys == kinds["referral"]
    assert kinds["referral"] > 10 and kinds["status"] > 0 and with_attachment > 0
    assert phases["rotate"] + phases["retire"] > 0  # packages arrived while keys moved
    assert "Traceback" not in window_log and "Traceback" not in restart_log
