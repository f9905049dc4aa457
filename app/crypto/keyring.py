"""Key-encryption keys (KEKs) held in a key ring with key ids.

The ring wraps per-victim data keys; it never sees field values. Keys live in files with
0600 permissions created by `passage init`. A KMS or Vault provider can implement
`KeyEncryptionProvider` and plug in behind the same interface.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.crypto.errors import KeyFileError, SealedValueIntegrityError, UnknownKeyError
from app.logging import get_logger

log = get_logger("passage.keys")

KEY_BYTES = 32
NONCE_BYTES = 12
MANIFEST = "keyring.json"
BLIND_INDEX_KEY = "blind-index.key"
SESSION_KEY = "session.key"
SIGNING_KEY = "instance-signing.pem"  # ES256: machine API tokens, signed referral packages


#: The additional data bound to a wrapped key names the KEK that wraps it, so it can only be
#: computed once the wrapping KEK is chosen: callers pass a function of the key id.
AadFor = Callable[[str], bytes]


class KeyEncryptionProvider(Protocol):
    @property
    def active_kid(self) -> str: ...

    def wrap(self, data_key: bytes, aad_for: AadFor) -> tuple[str, bytes]: ...

    def unwrap(self, kid: str, wrapped: bytes, aad: bytes) -> bytes: ...

    def usable_kids(self) -> list[str]: ...


@dataclass
class KekRecord:
    kid: str
    created_at: str
    retired: bool = False
    #: Being retired: it still unwraps, but nothing may be committed under it any more.
    retiring: bool = False


@dataclass(frozen=True)
class _RingState:
    """One consistent view of the ring: a wrap reads the active id and its key from one object,
    so a reload in another thread can never pair one key id with another key."""

    records: tuple[KekRecord, ...]
    keys: dict[str, AESGCM]
    active: str


def _write_secret_file(path: Path, data: bytes) -> None:
    """Create a 0600 file and make it durable (file and directory entry) before returning:
    a key lost in a power cut after data was re-wrapped under it would lose that data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _ring_lock(keys_dir: Path) -> Iterator[None]:
    """Serialise changes to the manifest (two `keys` commands never lose each other's)."""
    fd = os.open(keys_dir / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _check_private(path: Path) -> None:
    """Refuse a key file that is missing or that other users could read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {path.name} is missing in {path.parent}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path.name} must have 0600 permissions (found {oct(mode & 0o777)})"
        )


def read_secret_file(path: Path) -> bytes:
    """Read a base64 key file, refusing files other users could read."""
    _check_private(path)
    try:
        raw = base64.b64decode(path.read_bytes().strip(), validate=True)
    except ValueError as exc:
        raise KeyFileError(f"key file {path.name} is not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise KeyFileError(f"key file {path.name} must hold {KEY_BYTES} bytes")
    return raw


def create_signing_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_secret_file(path, pem)


def read_signing_key(path: Path) -> tuple[str, str]:
    """(private PEM, public PEM) of the instance signing key, refusing loose permissions."""
    from cryptography.hazmat.primitives import serialization

    _check_private(path)
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path.read_text(), public.decode()


def create_secret_file(path: Path) -> None:
    _write_secret_file(path, base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")


class FileKeyRing:
    """KEKs in `keys_dir/kek-<kid>.key`, listed in `keyring.json` with the active key id."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = keys_dir
        self._state = _RingState((), {}, "")
        self._loaded_signature: tuple[int, int, int] | None = None
        self._reload_lock = threading.Lock()
        self.reload()

    # -- loading ---------------------------------------------------------------------------
    def reload(self) -> None:
        with self._reload_lock:
            self._load()

    def reload_if_changed(self) -> bool:
        """Reload when keyring.json was replaced since it was read; True if it was.

        `passage keys rotate` runs in another process and swaps the manifest atomically:
        running workers learn the new KEK here instead of failing to unwrap what it wraps.
        A manifest that cannot be read right now keeps the current ring (and is retried).
        """
        if self._manifest_signature() == self._loaded_signature:
            return False
        with self._reload_lock:
            if self._manifest_signature() == self._loaded_signature:
                return False  # another thread reloaded meanwhile
            try:
                self._load()
            except KeyFileError as exc:
                # Keeps serving with what it has; wraps under a KEK being retired are refused
                # (KeyService.wrap_pinned), so a stale ring cannot lose data, only fail loudly.
                log.warning("key_ring_reload_failed", problem=str(exc))
                return False
            return True

    def _manifest_signature(self) -> tuple[int, int, int] | None:
        try:
            info = (self.keys_dir / MANIFEST).stat()
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def _load(self) -> None:
        manifest = self.keys_dir / MANIFEST
        signature = self._manifest_signature()
        if not manifest.exists():
            raise KeyFileError(f"no key ring at {self.keys_dir}: run 'passage init' first")
        try:
            data = json.loads(manifest.read_text())
            records = [KekRecord(**item) for item in data["keys"]]
            active = str(data["active_kid"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"{manifest.name} is malformed") from exc
        keys = {
            rec.kid: AESGCM(read_secret_file(self.keys_dir / f"kek-{rec.kid}.key"))
            for rec in records
            if not rec.retired
        }
        if active not in keys:
            raise KeyFileError(f"active key id {active} has no usable key file")
        self._state = _RingState(tuple(records), keys, active)
        self._loaded_signature = signature

    @classmethod
    def initialise(cls, keys_dir: Path) -> FileKeyRing:
        """Create a key directory with one KEK, the blind-index root and the session key."""
        keys_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(keys_dir, 0o700)
        if (keys_dir / MANIFEST).exists():
            raise KeyFileError(f"a key ring already exists at {keys_dir}")
        kid = _new_kid()
        create_secret_file(keys_dir / f"kek-{kid}.key")
        for name in (BLIND_INDEX_KEY, SESSION_KEY):
            if not (keys_dir / name).exists():
                create_secret_file(keys_dir / name)
        if not (keys_dir / SIGNING_KEY).exists():
            create_signing_key(keys_dir / SIGNING_KEY)
        ring_records = [KekRecord(kid=kid, created_at=_now())]
        _write_manifest(keys_dir, kid, ring_records)
        return cls(keys_dir)

    # -- provider interface ------------------------------------------------------------------
    @property
    def active_kid(self) -> str:
        return self._state.active

    def usable_kids(self) -> list[str]:
        return list(self._state.keys)

    def records(self) -> list[KekRecord]:
        return list(self._state.records)

    def wrap(self, data_key: bytes, aad_for: AadFor) -> tuple[str, bytes]:
        """Wrap under the KEK active now; the returned key id is the one to record.

        New data keys go under the KEK that is active now, even if another process rotated:
        the ring reloads first, then the key id, the additional data and the key come from one
        snapshot. Recording any other id would make the wrapped key unreadable.
        """
        self.reload_if_changed()
        state = self._state
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = state.keys[state.active].encrypt(nonce, data_key, aad_for(state.active))
        return state.active, nonce + sealed

    def unwrap(self, kid: str, wrapped: bytes, aad: bytes) -> bytes:
        return self.unwrap_finding_key(kid, wrapped, aad)[1]

    def unwrap_finding_key(self, kid: str, wrapped: bytes, aad: bytes) -> tuple[str, bytes]:
        """(id of the KEK that opened it, data key). The labelled KEK is tried first.

        Versions before 2026-12 could label a key wrapped right after a rotation with the
        previous KEK's id while the new KEK wrapped it (the additional data carries the
        label, so it still authenticates). Trying the other usable KEKs reads those keys
        back; `passage keys rotate` then stores them under a correct label.
        """
        state = self._state
        if kid not in state.keys and self.reload_if_changed():
            state = self._state  # a KEK added by another process since we loaded
        labelled = state.keys.get(kid)
        if labelled is None:
            raise UnknownKeyError(f"key-encryption key {kid} is not in the key ring (retired?)")
        nonce, body = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
        for attempt in range(2):
            for candidate, key in sorted(state.keys.items(), key=lambda item: item[0] != kid):
                try:
                    return candidate, key.decrypt(nonce, body, aad)
                except InvalidTag:
                    continue
            if attempt or not self.reload_if_changed():
                break
            state = self._state  # the KEK that wrapped it may be newer than this process
        raise SealedValueIntegrityError(f"wrapped data key failed its integrity check (kek {kid})")

    # -- lifecycle -----------------------------------------------------------------------------
    def add_key(self) -> str:
        """Add a new KEK and make it active. Old ids keep unwrapping until retired."""
        with _ring_lock(self.keys_dir):
            kid = _new_kid()
            create_secret_file(self.keys_dir / f"kek-{kid}.key")
            self.reload()  # build on the manifest as it is now, not as this process read it
            records = [*self._state.records, KekRecord(kid=kid, created_at=_now())]
            _write_manifest(self.keys_dir, kid, records)
            self.reload()
        return kid

    def mark_retiring(self, kid: str) -> None:
        """First step of retirement: from now on no process commits a key wrapped by `kid`
        (see `winding_down`); it keeps unwrapping until `retire`."""
        self._change(kid, retiring=True)

    def retire(self, kid: str) -> None:
        """Mark a KEK retired and destroy its file: wrapped keys in old backups die with it."""
        self._change(kid, retired=True)
        (self.keys_dir / f"kek-{kid}.key").unlink(missing_ok=True)
        _fsync_directory(self.keys_dir)
        self.reload()

    def _change(self, kid: str, *, retiring: bool = False, retired: bool = False) -> None:
        with _ring_lock(self.keys_dir):
            self.reload()
            state = self._state
            if kid == state.active:
                raise KeyFileError("the active key cannot be retired; rotate first")
            if not any(r.kid == kid for r in state.records):
                raise UnknownKeyError(f"key-encryption key {kid} is not in the key ring")
            records = [
                KekRecord(
                    r.kid,
                    r.created_at,
                    retired=r.retired or (retired and r.kid == kid),
                    retiring=r.retiring or (r.kid == kid and (retiring or retired)),
                )
                for r in state.records
            ]
            _write_manifest(self.keys_dir, state.active, records)
            self.reload()

    def winding_down(self, kid: str) -> bool:
        """True if the manifest on disk no longer lets new keys be committed under `kid`
        (being retired, retired, or unknown). Read from disk every time: a process whose
        reload failed must not go on trusting its memory."""
        try:
            data = json.loads((self.keys_dir / MANIFEST).read_text())
            for item in data["keys"]:
                if item["kid"] == kid:
                    return bool(item.get("retired") or item.get("retiring"))
        except (OSError, ValueError, KeyError, TypeError):
            return True
        return True


def _new_kid() -> str:
    # Sortable by creation time, unique enough for a handful of keys per year.
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_manifest(keys_dir: Path, active: str, records: list[KekRecord]) -> None:
    payload = {"active_kid": active, "keys": [_record_json(rec) for rec in records]}
    tmp = keys_dir / (MANIFEST + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(payload, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, keys_dir / MANIFEST)
    _fsync_directory(keys_dir)


def _record_json(record: KekRecord) -> dict[str, object]:
    data: dict[str, object] = {"kid": record.kid, "created_at": record.created_at}
    if record.retired:
        data["retired"] = True
    if record.retiring:
        data["retiring"] = True
    return data


# -- transnational exchange: the instance encryption key (appended for issue 6) ---------------
# Partners encrypt packages to this RSA key (JWE RSA-OAEP-256 + A256GCM); they pin its public
# half out of band. It is separate from the ES256 signing key: one key, one use.
ENCRYPTION_KEY = "instance-encryption.pem"
ENCRYPTION_KEY_BITS = 3072


def _check_private_key_file(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {path.name} is missing in {path.parent}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path.name} must have 0600 permissions (found {oct(mode & 0o777)})"
        )


def create_encryption_key(path: Path) -> None:
    """Create the RSA encryption key atomically: written aside, then linked into place.

    Two processes racing to create it end with one complete key file; the loser's link
    fails with FileExistsError and it simply reads the winner's key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=ENCRYPTION_KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    staging = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    _write_secret_file(staging, pem)
    try:
        os.link(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def ensure_encryption_key(keys_dir: Path) -> Path:
    """The instance encryption key file, created (0600) if it does not exist yet."""
    path = keys_dir / ENCRYPTION_KEY
    if not path.exists():
        import contextlib

        with contextlib.suppress(FileExistsError):  # created concurrently by another process
            create_encryption_key(path)
    return path


def read_encryption_key(path: Path) -> tuple[str, str]:
    """(private PEM, public PEM) of the instance encryption key, refusing loose permissions."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    _check_private_key_file(path)
    data = path.read_bytes()
    private = serialization.load_pem_private_key(data, password=None)
    if not isinstance(private, rsa.RSAPrivateKey) or private.key_size < 2048:
        raise KeyFileError(f"key file {path.name} must hold an RSA key of at least 2048 bits")
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data.decode(), public.decode()
