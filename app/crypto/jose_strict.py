"""The one place python-jose is called, behind strict checks.

python-jose 3.5 accepts any `alg` when `algorithms` is omitted, accepts tokens without `exp`
unless told otherwise, skips `aud` when the claim is missing, ignores `crit`, and follows
whatever headers it is given. This wrapper refuses all of that before and after the library
runs: an algorithm allow-list, required exp/iat/aud/iss/jti, a checked `typ`, no `jku`,
`jwk`, `x5u`, `x5c` or `crit` headers, a bounded lifetime, and (for JWE) no compression.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

from jose import jwe, jws, jwt
from jose.exceptions import JOSEError

SIGNING_ALGORITHMS = frozenset({"ES256"})
JWE_KEY_ALGORITHMS = frozenset({"RSA-OAEP-256"})
JWE_ENCRYPTIONS = frozenset({"A256GCM"})
FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit"})
REQUIRED_CLAIMS = ("exp", "iat", "aud", "iss", "jti")
MAX_TOKEN_BYTES = 64 * 1024


class TokenError(Exception):
    """A token or package was refused. The message says why, without echoing content."""


def _segment_json(segment: str) -> dict[str, Any]:
    try:
        padded = segment + "=" * (-len(segment) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError("malformed header") from exc
    if not isinstance(value, dict):
        raise TokenError("malformed header")
    return value


def _check_header(header: Mapping[str, Any], allowed_algs: Iterable[str], typ: str) -> None:
    alg = header.get("alg")
    if alg not in set(allowed_algs):
        raise TokenError(f"algorithm {alg!r} is not allowed")
    present = FORBIDDEN_HEADERS & set(header)
    if present:
        raise TokenError(f"header parameters not accepted: {', '.join(sorted(present))}")
    if "zip" in header:
        raise TokenError("compressed tokens are not accepted")
    if header.get("typ") != typ:
        raise TokenError(f"token type must be {typ!r}")


def sign(
    claims: Mapping[str, Any], private_key_pem: str, *, kid: str, typ: str, lifetime_seconds: int
) -> str:
    now = int(time.time())
    body = {"iat": now, "exp": now + lifetime_seconds, "jti": secrets.token_urlsafe(16), **claims}
    missing = [c for c in REQUIRED_CLAIMS if c not in body]
    if missing:
        raise TokenError(f"claims missing: {', '.join(missing)}")
    return str(jws.sign(body, private_key_pem, headers={"kid": kid, "typ": typ}, algorithm="ES256"))


def verify(
    token: str,
    public_key_pem: str,
    *,
    audience: str,
    issuer: str,
    typ: str,
    max_lifetime_seconds: int,
    leeway: int = 30,
) -> dict[str, Any]:
    """Verify a compact JWS-signed JWT; return its claims or raise TokenError."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise TokenError("not a compact signed token")
    _check_header(_segment_json(token.split(".", 1)[0]), SIGNING_ALGORITHMS, typ)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key_pem,
            algorithms=sorted(SIGNING_ALGORITHMS),
            audience=audience,
            issuer=issuer,
            options={
                "require_exp": True,
                "require_iat": True,
                "require_aud": True,
                "require_iss": True,
                "require_jti": True,
                "verify_at_hash": False,
                "leeway": leeway,
            },
        )
    except JOSEError as exc:
        raise TokenError(f"token refused: {type(exc).__name__}") from exc
    # Belt and braces over the library: every required claim present, audience exact.
    for claim in REQUIRED_CLAIMS:
        if claim not in claims:
            raise TokenError(f"claim {claim!r} is required")
    aud = claims["aud"]
    if (aud if isinstance(aud, str) else None) != audience:
        raise TokenError("wrong audience")
    if not isinstance(claims["exp"], int) or not isinstance(claims["iat"], int):
        raise TokenError("exp and iat must be integers")
    if claims["exp"] - claims["iat"] > max_lifetime_seconds:
        raise TokenError("token lifetime is longer than allowed")
    if claims["iat"] > time.time() + leeway:
        raise TokenError("token issued in the future")
    return claims


def encrypt(payload: bytes, recipient_public_pem: str, *, typ: str, kid: str) -> str:
    """JWE (RSA-OAEP-256 + A256GCM), never compressed."""
    token = jwe.encrypt(
        payload,
        recipient_public_pem,
        algorithm="RSA-OAEP-256",
        encryption="A256GCM",
        kid=kid,
        cty=typ,
    )
    return token.decode() if isinstance(token, bytes) else str(token)


def decrypt(token: str, private_key_pem: str, *, typ: str) -> bytes:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES * 16 or token.count(".") != 4:
        raise TokenError("not a compact encrypted token")
    header = _segment_json(token.split(".", 1)[0])
    if header.get("alg") not in JWE_KEY_ALGORITHMS or header.get("enc") not in JWE_ENCRYPTIONS:
        raise TokenError("encryption algorithm not allowed")
    present = FORBIDDEN_HEADERS & set(header)
    if present:
        raise TokenError(f"header parameters not accepted: {', '.join(sorted(present))}")
    if "zip" in header:
        raise TokenError("compressed tokens are not accepted")
    if header.get("cty") != typ:
        raise TokenError(f"content type must be {typ!r}")
    try:
        plain = jwe.decrypt(token, private_key_pem)
    except JOSEError as exc:
        raise TokenError(f"package refused: {type(exc).__name__}") from exc
    if not isinstance(plain, bytes):
        raise TokenError("package refused")
    return plain


# -- Transnational packages (appended for issue 6) ---------------------------------------------
# Instance-to-instance messages are refused with a stable reason code: it is stored with the
# quarantined package and returned to the sender. Same strictness as above (allow-listed
# algorithms, required claims, exact typ/iss/aud, no key-pointing headers, no compression);
# the checks are spelled out here so each failure has its own code.


class PackageRefused(TokenError):
    """A package refused for a coded reason. The message never echoes package content."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _header_or_refuse(token: str) -> dict[str, Any]:
    try:
        return _segment_json(token.split(".", 1)[0])
    except TokenError as exc:
        raise PackageRefused("malformed", "the protected header is not valid JSON") from exc


def peek_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS or JWE, NOT verified.

    Only to choose which pinned key to try and to describe a quarantined package."""
    if not isinstance(token, str) or token.count(".") not in (2, 4):
        raise PackageRefused("malformed", "not a compact JOSE token")
    return _header_or_refuse(token)


def peek_claims(token: str) -> dict[str, Any]:
    """The claims of a compact JWS, NOT verified: to find the claimed sender's pinned keys and
    to describe quarantined packages. Nothing read here is trusted before verify_signed()."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > MAX_TOKEN_BYTES:
        raise PackageRefused("malformed", "not a compact signed token")
    try:
        return _segment_json(token.split(".")[1])
    except TokenError as exc:
        raise PackageRefused("malformed", "the claims are not a JSON object") from exc


def check_signed_header(header: Mapping[str, Any], typ: str | Iterable[str]) -> None:
    """Algorithm allow-list, no key-pointing or critical headers, no compression, exact typ."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in SIGNING_ALGORITHMS:
        raise PackageRefused("algorithm_not_allowed", f"signature algorithm {alg!r} is not allowed")
    present = FORBIDDEN_HEADERS & set(header)
    if present:
        raise PackageRefused(
            "forbidden_header", f"header parameters not accepted: {', '.join(sorted(present))}"
        )
    if "zip" in header:
        raise PackageRefused("compressed", "compressed tokens are not accepted")
    allowed = {typ} if isinstance(typ, str) else set(typ)
    if header.get("typ") not in allowed:
        raise PackageRefused("wrong_type", "the token type is not one this endpoint accepts")


def verify_signed(
    token: str,
    public_key_pem: str,
    *,
    audience: str,
    issuer: str,
    typ: str | Iterable[str],
    max_lifetime_seconds: int,
    leeway: int = 30,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify a compact ES256 JWS against one pinned public key; return its claims.

    Raises PackageRefused with one of: malformed, algorithm_not_allowed, forbidden_header,
    compressed, wrong_type, bad_signature, missing_claim, wrong_issuer, wrong_audience,
    not_yet_valid, expired, lifetime_too_long."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise PackageRefused("malformed", "not a compact signed token")
    if len(token) > MAX_TOKEN_BYTES:
        raise PackageRefused("oversize", "the signed package is larger than allowed")
    check_signed_header(_header_or_refuse(token), typ)
    try:
        payload = jws.verify(token, public_key_pem, algorithms=sorted(SIGNING_ALGORITHMS))
    except JOSEError as exc:
        raise PackageRefused("bad_signature", "the signature does not verify") from exc
    try:
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageRefused("malformed", "the claims are not JSON") from exc
    if not isinstance(claims, dict):
        raise PackageRefused("malformed", "the claims are not a JSON object")
    for claim in REQUIRED_CLAIMS:
        if claim not in claims:
            raise PackageRefused("missing_claim", f"claim {claim!r} is required")
    exp, iat = claims["exp"], claims["iat"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (exp, iat)):
        raise PackageRefused("malformed", "exp and iat must be integers")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 1 <= len(jti) <= 100:
        raise PackageRefused("malformed", "jti must be a short string")
    if claims["iss"] != issuer:
        raise PackageRefused("wrong_issuer", "the issuer is not the pinned sender")
    if not isinstance(claims["aud"], str) or claims["aud"] != audience:
        raise PackageRefused("wrong_audience", "the package is addressed to another recipient")
    moment = time.time() if now is None else now
    if iat > moment + leeway:
        raise PackageRefused("not_yet_valid", "the package was issued in the future")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int) or nbf > moment + leeway):
        raise PackageRefused("not_yet_valid", "the package is not valid yet")
    if exp <= iat:
        raise PackageRefused("malformed", "exp must be after iat")
    if moment > exp + leeway:
        raise PackageRefused("expired", "the package has expired")
    if exp - iat > max_lifetime_seconds:
        raise PackageRefused("lifetime_too_long", "the package lifetime is longer than allowed")
    return claims


def decrypt_typed(
    token: str,
    private_key_pem: str,
    *,
    typs: Iterable[str],
    kid: str,
    max_bytes: int,
) -> tuple[str, bytes]:
    """Decrypt a compact JWE addressed to our key `kid`; return (cty, plaintext).

    Raises PackageRefused with one of: oversize, malformed, algorithm_not_allowed,
    forbidden_header, compressed, wrong_type, wrong_recipient_key, undecryptable."""
    if not isinstance(token, str):
        raise PackageRefused("malformed", "not a compact encrypted token")
    if len(token) > max_bytes:
        raise PackageRefused("oversize", "the encrypted part is larger than allowed")
    if token.count(".") != 4:
        raise PackageRefused("malformed", "not a compact encrypted token")
    header = _header_or_refuse(token)
    if header.get("alg") not in JWE_KEY_ALGORITHMS or header.get("enc") not in JWE_ENCRYPTIONS:
        raise PackageRefused("algorithm_not_allowed", "encryption algorithm not allowed")
    present = FORBIDDEN_HEADERS & set(header)
    if present:
        raise PackageRefused(
            "forbidden_header", f"header parameters not accepted: {', '.join(sorted(present))}"
        )
    if "zip" in header:
        raise PackageRefused("compressed", "compressed tokens are not accepted")
    cty = header.get("cty")
    if not isinstance(cty, str) or cty not in set(typs):
        raise PackageRefused("wrong_type", "the content type is not one this endpoint accepts")
    if header.get("kid") != kid:
        raise PackageRefused("wrong_recipient_key", "encrypted to a key that is not ours")
    try:
        plain = jwe.decrypt(token, private_key_pem)
    except Exception as exc:  # python-jose raises several types on damaged input
        raise PackageRefused("undecryptable", "the encrypted part does not decrypt") from exc
    if not isinstance(plain, bytes):
        raise PackageRefused("undecryptable", "the encrypted part does not decrypt")
    return cty, plain
