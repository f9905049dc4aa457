"""Idempotency-Key on the POSTs that create records: replay, 422, 409, per-user scope, atomicity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from app.cases.models import Case, CaseNote, CaseParticipant, Consent
from app.db.base import utcnow
from app.operations import idempotency
from app.operations.models import IdempotencyRecord
from tests.builders import registration
from tests.conftest import REPO


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def worker(world, api):
    ngo = world.agency("ngo")
    return api(world.user("ngo_caseworker", ngo)), ngo


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def test_same_key_and_body_replays_the_registration_once(worker, session) -> None:
    client, _ = worker
    headers = _key()
    before = _count(session, Case)
    first = client.post("/api/v1/cases", json=registration(), headers=headers)
    second = client.post("/api/v1/cases", json=registration(), headers=headers)
    assert first.status_code == second.status_code == 201, second.text
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"]
    assert "idempotent-replayed" not in first.headers
    assert _count(session, Case) == before + 1


def test_json_spacing_and_key_order_do_not_change_the_request(worker, session) -> None:
    client, _ = worker
    headers = {**_key(), "Content-Type": "application/json"}

    body = registration()
    first = client.post("/api/v1/cases", content=json.dumps(body), headers=headers)
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    second = client.post("/api/v1/cases", content=reordered, headers=headers)
    assert second.status_code == 201 and second.json()["id"] == first.json()["id"]


def test_same_key_with_another_body_is_refused_with_422(worker, session) -> None:
    client, _ = worker
    headers = _key()
    assert client.post("/api/v1/cases", json=registration(), headers=headers).status_code == 201
    before = _count(session, Case)
    other = client.post("/api/v1/cases", json=registration(given_name="Other"), headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert "Other" not in other.text
    assert _count(session, Case) == before


def test_keys_are_scoped_per_user(world, api, session) -> None:
    ngo = world.agency("ngo")
    alice, bob = api(world.user("ngo_caseworker", ngo)), api(world.user("ngo_caseworker", ngo))
    headers = _key()
    a = alice.post("/api/v1/cases", json=registration(), headers=headers)
    b = bob.post("/api/v1/cases", json=registration(), headers=headers)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]  # Bob's own case, nothing of Alice's
    assert "idempotent-replayed" not in b.headers
    # A different body under the same key is fine for Bob too: it is his key, not Alice's.
    assert (
        bob.post("/api/v1/cases", json=registration(given_name="Zoé"), headers=_key()).status_code
        == 201
    )


def test_every_create_route_replays_its_first_answer(world, api, session) -> None:
    ngo, other = world.agency("ngo"), world.agency("ngo")
    client = api(world.user("ngo_caseworker", ngo))
    case_id = client.post("/api/v1/cases", json=registration()).json()["id"]
    requests = [
        (
            f"/api/v1/cases/{case_id}/notes",
            {"kind": "contact", "body": "phoned, fine"},
            CaseNote,
        ),
        (
            f"/api/v1/cases/{case_id}/consents",
            {
                "purpose": "referral",
                "scope": ["identity"],
                "given_on": "2026-10-02",
            },
            Consent,
        ),
        (
            f"/api/v1/cases/{case_id}/participants",
            {"agency_id": str(other.id), "access_role": "support", "purpose": "shelter"},
            CaseParticipant,
        ),
    ]
    for path, body, model in requests:
        headers = _key()
        before = _count(session, model)
        first = client.post(path, json=body, headers=headers)
        assert first.status_code == 201, (path, first.text)
        second = client.post(path, json=body, headers=headers)
        assert (second.status_code, second.json()) == (201, first.json()), path
        assert second.headers["idempotent-replayed"] == "true"
        assert _count(session, model) == before + 1, path


def test_break_glass_replays_without_a_second_grant(world, api, session) -> None:
    from app.auth.break_glass import BreakGlassGrant
    from tests.conftest import PASSWORD

    owner = api(world.user("ngo_caseworker", world.agency("ngo")))
    case_id = owner.post("/api/v1/cases", json=registration()).json()["id"]
    outsider = api(world.user("ngo_caseworker", world.agency("ngo")))
    body = {
        "reason_code": "imminent_risk_to_life",
        "justification": "call from shelter",
        "password": PASSWORD,
    }
    headers = _key()
    first = outsider.post(f"/api/v1/cases/{case_id}/break-glass", json=body, headers=headers)
    second = outsider.post(f"/api/v1/cases/{case_id}/break-glass", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert (second.status_code, second.json()) == (201, first.json())
    assert _count(session, BreakGlassGrant) == 1


def test_a_failed_request_releases_its_key(worker, session, monkeypatch) -> None:
    client, _ = worker
    headers = _key()
    invalid = registration()
    invalid["victim"]["not_a_field"] = "x"
    assert client.post("/api/v1/cases", json=invalid, headers=headers).status_code == 422
    assert _count(session, IdempotencyRecord) == 0
    # Fixing the body and retrying with the same key works (the failure created nothing).
    assert client.post("/api/v1/cases", json=registration(), headers=headers).status_code == 201


def test_rolled_back_request_leaves_neither_records_nor_a_completed_key(
    worker, session, monkeypatch
) -> None:
    """The key's completion commits with the case or not at all."""
    from app.cases import service

    client, _ = worker
    headers = _key()
    before = _count(session, Case)

    def broken_read(*args, **kwargs):
        raise RuntimeError("boom after the case was flushed")

    quiet = TestClient(
        client.client.app,
        base_url="https://testserver",
        raise_server_exceptions=False,
        cookies=dict(client.client.cookies),
        headers=dict(client.client.headers),
    )
    with monkeypatch.context() as m:
        m.setattr(service, "read_case", broken_read)
        failed = quiet.post("/api/v1/cases", json=registration(), headers=headers)
    assert failed.status_code == 500
    assert _count(session, Case) == before
    assert _count(session, IdempotencyRecord) == 0
    retried = client.post("/api/v1/cases", json=registration(), headers=headers)
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert _count(session, Case) == before + 1


def test_a_request_whose_claim_was_taken_over_commits_nothing(worker, session, monkeypatch) -> None:
    from app.cases import service

    client, _ = worker
    before = _count(session, Case)
    original = service.register

    def register_then_lose_the_claim(s, *args, **kwargs):
        case = original(s, *args, **kwargs)
        # Another request took the key over (as after a lapsed lease) while this one ran.
        s.execute(update(IdempotencyRecord).values(lease_token="someone-else"))
        return case

    monkeypatch.setattr(service, "register", register_then_lose_the_claim)
    lost = client.post("/api/v1/cases", json=registration(), headers=_key())
    assert lost.status_code == 409 and lost.json()["error"]["code"] == "idempotency_in_flight"
    assert _count(session, Case) == before


def test_expired_keys_start_afresh(worker, session) -> None:
    client, _ = worker
    headers = _key()
    first = client.post("/api/v1/cases", json=registration(), headers=headers)
    session.execute(update(IdempotencyRecord).values(expires_at=utcnow() - timedelta(seconds=1)))
    again = client.post("/api/v1/cases", json=registration(given_name="Other"), headers=headers)
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]


# -- a claim whose worker died -----------------------------------------------------------------
def _digests(app, key: str, path: str, body: dict) -> tuple[bytes, bytes]:
    """The key digest and request fingerprint exactly as the middleware computes them."""
    secret = idempotency._secret(app)
    canonical = idempotency.canonical_body(json.dumps(body).encode(), "application/json")
    return (
        idempotency._mac(secret, b"key", key.encode()),
        idempotency._mac(secret, b"POST", path.encode(), canonical),
    )


def _advisory_locks_on(connection, key: tuple[int, int]) -> int:
    return connection.execute(
        text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid::int4 = :a AND objid::int4 = :b AND objsubid = 2"
        ),
        {"a": key[0], "b": key[1]},
    ).scalar_one()


def test_a_live_claim_answers_409_with_a_short_retry_after(worker, app, session) -> None:
    """Another request holds the key and runs: 409, `Retry-After: 1`. Once it is over (its
    lock released on PostgreSQL; on SQLite only once its lease lapses, since its process, this
    one, still runs), the key is taken over."""
    client, _ = worker
    key, body = str(uuid.uuid4()), registration()
    key_digest, fingerprint = _digests(app, key, "/api/v1/cases", body)
    user_id = client.user.id
    outcome, hold = idempotency.acquire(
        app.state.database,
        user_id=user_id,
        key_digest=key_digest,
        fingerprint=fingerprint,
        route="/api/v1/cases",
    )
    assert isinstance(outcome, idempotency.Claimed)
    before = _count(session, Case)
    blocked = client.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
    assert blocked.status_code == 409, blocked.text
    assert blocked.json()["error"]["code"] == "idempotency_in_flight"
    assert blocked.headers["retry-after"] == "1"
    # A different body under a key in flight is still a reused key, not a wait.
    other = client.post(
        "/api/v1/cases", json=registration(given_name="Other"), headers={"Idempotency-Key": key}
    )
    assert other.status_code == 422
    is_pg = session.bind.dialect.name == "postgresql"
    if is_pg:
        assert _advisory_locks_on(session.connection(), idempotency.lock_key(user_id, key_digest))
    hold.end()  # the holder stops without releasing its claim (as if it had died)
    if not is_pg:
        row = session.scalars(select(IdempotencyRecord)).one()
        assert row.holder == idempotency.process_identity()  # alive: the lease decides
        again = client.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == 409
        session.execute(
            update(IdempotencyRecord).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    taken = client.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
    assert taken.status_code == 201, taken.text
    assert "idempotent-replayed" not in taken.headers
    assert _count(session, Case) == before + 1
    if is_pg:  # every request lets its lock go once it has answered
        assert not _advisory_locks_on(
            session.connection(), idempotency.lock_key(user_id, key_digest)
        )


_HOLDER = """
import sys, time, uuid
import app.db.models  # every mapped table, as in the app
from app.config import Settings
from app.db.session import Database
from app.operations import idempotency

url, keys, user, key_digest, fingerprint = sys.argv[1:]
database = Database(Settings(environment="test", database_url=url, keys_dir=keys))
outcome, hold = idempotency.acquire(
    database,
    user_id=uuid.UUID(user),
    key_digest=bytes.fromhex(key_digest),
    fingerprint=bytes.fromhex(fingerprint),
    route="/api/v1/cases",
)
print(type(outcome).__name__, flush=True)
time.sleep(300)
"""


def test_a_claim_whose_process_was_killed_is_taken_over_at_once(live) -> None:
    """A real process claims the key (and on PostgreSQL holds its lock) and is SIGKILLed: the
    next request with the key runs at once instead of answering 409 for the 30 s lease."""
    user, _ = live.user("ngo_caseworker", "ngo")
    client = live.api(user)
    key, body = str(uuid.uuid4()), registration()
    key_digest, fingerprint = _digests(live.app, key, "/api/v1/cases", body)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _HOLDER,
            live.env.app_url,
            str(live.keys_dir),
            str(user.id),
            key_digest.hex(),
            fingerprint.hex(),
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PASSAGE_LOG_LEVEL": "WARNING"},
        cwd=str(REPO),
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"Claimed"
        blocked = client.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
        assert blocked.status_code == 409 and blocked.headers["retry-after"] == "1"
        with live.session() as s:
            row = s.scalars(select(IdempotencyRecord)).one()
            assert row.state == "in_flight"
            assert row.holder == idempotency.process_identity(holder.pid)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    killed = time.monotonic()
    while True:
        retry = client.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
        if retry.status_code != 409 or time.monotonic() - killed > 5:
            break
        time.sleep(0.05)
    waited = time.monotonic() - killed
    print(f"\nretry succeeded {waited:.3f} s after the holder was killed")
    assert retry.status_code == 201, retry.text
    assert waited < 2
    with live.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 1
        row = s.scalars(select(IdempotencyRecord)).one()
        assert row.state == "completed" and str(row.resource_id) == retry.json()["id"]
    replay = client.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"


@pytest.mark.postgres_only
def test_a_claim_whose_lock_connection_was_terminated_is_taken_over(live) -> None:
    """The server ends the holder's connection (as when its process dies): the claim is free at
    once, and the holder, if it were still running, could not complete it any more."""
    from sqlalchemy import create_engine

    user, _ = live.user("ngo_caseworker", "ngo")
    client = live.api(user)
    key, body = str(uuid.uuid4()), registration()
    key_digest, fingerprint = _digests(live.app, key, "/api/v1/cases", body)
    outcome, hold = idempotency.acquire(
        live.database,
        user_id=user.id,
        key_digest=key_digest,
        fingerprint=fingerprint,
        route="/api/v1/cases",
    )
    assert isinstance(outcome, idempotency.Claimed) and hold.connection is not None
    backend = hold.connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert (
        client.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key}).status_code == 409
    )
    admin = create_engine(live.env.owner_url)
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend}).scalar()
    finally:
        admin.dispose()
    began = time.monotonic()
    while True:
        retry = client.post("/api/v1/cases", json=body, headers={"Idempotency-Key": key})
        if retry.status_code != 409 or time.monotonic() - began > 5:
            break
        time.sleep(0.05)
    assert retry.status_code == 201, retry.text
    hold.end()  # its unlock fails: the connection is discarded, not pooled again
    locks = idempotency.claim_locks(live.database)
    assert locks is not None and locks.engine.pool.checkedout() == 0
    # The first holder's claim was taken over: its completion would match no row.
    with live.session() as s:
        row = s.scalars(select(IdempotencyRecord)).one()
        assert row.state == "completed" and row.lease_token != outcome.token


def test_which_claiming_processes_are_dead() -> None:
    me = idempotency.process_identity()
    assert me.split("|")[2] == str(os.getpid())
    assert not idempotency.holder_is_dead(me)
    assert not idempotency.holder_is_dead(None)
    assert not idempotency.holder_is_dead("garbage")
    host, boot, pid, start = me.split("|")
    # Another host (or container): cannot be told, the lease decides.
    assert not idempotency.holder_is_dead(f"other-{host}|{boot}|{pid}|{start}")
    if boot:  # this machine rebooted since the claim
        assert idempotency.holder_is_dead(f"{host}|not-{boot}|{pid}|{start}")
    if start:  # the pid now belongs to another process
        assert idempotency.holder_is_dead(f"{host}|{boot}|{pid}|{int(start) + 1}")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        identity = idempotency.process_identity(child.pid)
        assert not idempotency.holder_is_dead(identity)
        child.send_signal(signal.SIGKILL)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped
        assert idempotency.holder_is_dead(identity)  # a zombie runs no request
    finally:
        child.kill()
        child.wait()
    assert idempotency.holder_is_dead(identity)


def test_invalid_keys_unsupported_routes_and_anonymous_callers(worker, client) -> None:
    api_client, _ = worker
    bad = api_client.post("/api/v1/cases", json=registration(), headers={"Idempotency-Key": " "})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_idempotency_key"
    anonymous = client.post("/api/v1/cases", json=registration(), headers=_key())
    assert anonymous.status_code == 401


def test_the_header_is_published_on_the_operations_that_honour_it(app) -> None:
    schema = app.openapi()
    for route in idempotency.routes():
        names = [p["name"] for p in schema["paths"][route.template]["post"].get("parameters", [])]
        assert "Idempotency-Key" in names, route.template
    transitions = schema["paths"]["/api/v1/cases/{case_id}/transitions"]["post"]
    assert "Idempotency-Key" not in [p["name"] for p in transitions.get("parameters", [])]


def test_nothing_personal_is_stored(worker, session) -> None:
    client, _ = worker
    key = "client-key-" + uuid.uuid4().hex
    client.post("/api/v1/cases", json=registration(), headers={"Idempotency-Key": key})
    note_case = client.post("/api/v1/cases", json=registration()).json()["id"]
    client.post(
        f"/api/v1/cases/{note_case}/notes",
        json={"kind": "contact", "body": "Élodie called from 12 rue des Lilas"},
        headers={"Idempotency-Key": key + "-note"},
    )
    rows = session.scalars(select(IdempotencyRecord)).all()
    assert len(rows) == 2
    dump = repr([(r.key_digest, r.fingerprint, r.route, r.response_body) for r in rows])
    for secret in ("Élodie", "Lilas", "N'Diaye", key):
        assert secret not in dump
    case_row = next(r for r in rows if r.route == "/api/v1/cases")
    assert case_row.response_body is None and case_row.resource_id is not None


@pytest.mark.postgres_only
def test_parallel_duplicates_create_one_case(live) -> None:
    """20 concurrent POSTs with one key: one case; the others replay it or get 409."""
    from app.cases.models import Case as CaseModel

    user, _ = live.user("ngo_caseworker", "ngo")
    owner = live.api(user)
    headers = {**_key(), **dict(owner.client.headers)}
    cookies = dict(owner.client.cookies)
    barrier = threading.Barrier(20)
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def post() -> None:
        with TestClient(live.app, base_url="https://testserver", cookies=cookies) as c:
            barrier.wait()
            r = c.post("/api/v1/cases", json=registration(), headers=headers)
        with lock:
            results.append((r.status_code, r.json().get("id")))

    threads = [threading.Thread(target=post) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted({s for s, _ in results})
    assert set(statuses) <= {201, 409}, results
    assert len({i for s, i in results if s == 201}) == 1, results
    with live.session() as s:
        assert s.scalar(select(func.count()).select_from(CaseModel)) == 1
    # Afterwards, everyone gets the replay.
    late = TestClient(live.app, base_url="https://testserver", cookies=cookies).post(
        "/api/v1/cases", json=registration(), headers=headers
    )
    assert late.status_code == 201 and late.headers["idempotent-replayed"] == "true"
