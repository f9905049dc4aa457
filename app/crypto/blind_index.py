"""Blind indexes: keyed, truncated HMACs over normalised compound values.

They let us find possible duplicate registrations across agencies without decrypting
anything. Each index has its own key derived by HKDF from a root key, so digests of one
index cannot be compared with another's. Only compound values are indexed (a family name
alone would leak too much in a small population), and digests are truncated so collisions
exist across a national database: a match means "possible duplicate", never identity.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Sequence
from datetime import date

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DIGEST_BYTES = 16
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_FOLD_MAP: dict[str, str | int | None] = {"æ": "ae", "ø": "o", "đ": "d", "ł": "l"}
_FOLD = str.maketrans(_FOLD_MAP)


def normalise_text(value: str) -> str:
    """Fold case, strip accents and punctuation: "Élodie N'Diaye" -> "elodiendiaye"."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # ß, æ, ø and friends have no decomposition; casefold covers ß, the map covers the rest.
    folded = stripped.casefold().translate(_FOLD)
    return _NON_ALNUM.sub("", folded)


def name_tokens(*parts: str | None) -> list[str]:
    tokens: list[str] = []
    for part in parts:
        if part:
            tokens.extend(t for t in (normalise_text(w) for w in re.split(r"[\s\-]+", part)) if t)
    return tokens


class BlindIndexer:
    def __init__(self, root_key: bytes) -> None:
        self._root = root_key
        self._keys: dict[str, bytes] = {}

    def _key(self, index_name: str) -> bytes:
        key = self._keys.get(index_name)
        if key is None:
            key = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=b"passage:blind-index:v1:" + index_name.encode(),
            ).derive(self._root)
            self._keys[index_name] = key
        return key

    def digest(self, index_name: str, parts: Sequence[str]) -> bytes:
        message = "\x1f".join(parts).encode()
        return hmac.new(self._key(index_name), message, hashlib.sha256).digest()[:DIGEST_BYTES]

    def identity_digests(
        self,
        *,
        given_name: str | None,
        family_name: str | None,
        date_of_birth: date | None,
        documents: Sequence[tuple[str, str]] = (),
    ) -> dict[str, list[bytes]]:
        """All blind-index digests for one person, by index name."""
        out: dict[str, list[bytes]] = {}
        if date_of_birth is not None:
            dob = date_of_birth.isoformat()
            family = normalise_text(family_name or "")
            if family:
                out["family_name_dob"] = [self.digest("family_name_dob", [family, dob])]
            tokens = sorted(name_tokens(given_name, family_name))
            if tokens:
                # Order-free: catches given and family names swapped between registrations.
                out["full_name_dob"] = [self.digest("full_name_dob", ["".join(tokens), dob])]
        docs = [
            self.digest("document", [country.upper(), normalise_text(number)])
            for country, number in documents
            if number and normalise_text(number)
        ]
        if docs:
            out["document"] = docs
        return out
