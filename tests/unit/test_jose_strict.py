"""The strict JOSE wrapper refuses every known JWT attack, whatever python-jose would allow."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwe, jws

from app.crypto.jose_strict import TokenError, decrypt, encrypt, sign, verify

AUD, ISS, TYP = "https://a.example/api", "https://a.example", "at+jwt"


def _ec_pair() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pub = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return priv, pub


PRIV, PUB = _ec_pair()


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _claims(**over):
    now = int(time.time())
    return {"iss": ISS, "aud": AUD, "sub": "u", "iat": now, "exp": now + 300, "jti": "j1", **over}


def _verify(token: str):
    return verify(token, PUB, audience=AUD, issuer=ISS, typ=TYP, max_lifetime_seconds=300)


def test_a_good_token_verifies() -> None:
    token = sign({"iss": ISS, "aud": AUD, "sub": "u"}, PRIV, kid="k", typ=TYP, lifetime_seconds=300)
    assert _verify(token)["sub"] == "u"


def test_alg_none_is_refused() -> None:
    token = _b64({"alg": "none", "typ": TYP}) + "." + _b64(_claims()) + "."
    with pytest.raises(TokenError, match="algorithm"):
        _verify(token)


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    header = {"alg": "HS256", "typ": TYP}
    signing_input = _b64(header) + "." + _b64(_claims())
    import hashlib
    import hmac

    sig = (
        base64.urlsafe_b64encode(
            hmac.new(PUB.encode(), signing_input.encode(), hashlib.sha256).digest()
        )
        .rstrip(b"=")
        .decode()
    )
    with pytest.raises(TokenError, match="algorithm"):
        _verify(signing_input + "." + sig)


@pytest.mark.parametrize("drop", ["exp", "aud", "iss", "jti", "iat"])
def test_missing_required_claims_are_refused(drop: str) -> None:
    claims = _claims()
    del claims[drop]
    token = jws.sign(claims, PRIV, headers={"typ": TYP}, algorithm="ES256")
    with pytest.raises(TokenError):
        _verify(token)


@pytest.mark.parametrize(
    "over",
    [
        {"exp": int(time.time()) - 120},
        {"aud": "https://other.example/api"},
        {"iss": "https://evil.example"},
        {"exp": int(time.time()) + 3600},
        {"iat": int(time.time()) + 600, "exp": int(time.time()) + 700},
    ],
)
def test_expired_wrong_audience_issuer_or_lifetime_refused(over) -> None:
    token = jws.sign(_claims(**over), PRIV, headers={"typ": TYP}, algorithm="ES256")
    with pytest.raises(TokenError):
        _verify(token)


@pytest.mark.parametrize(
    "header",
    [
        {"typ": "JWT"},
        {"typ": TYP, "jku": "https://evil/jwks"},
        {"typ": TYP, "jwk": {"kty": "EC"}},
        {"typ": TYP, "x5u": "https://evil/cert"},
        {"typ": TYP, "crit": ["exp"]},
    ],
)
def test_wrong_typ_and_key_pointing_headers_refused(header) -> None:
    token = jws.sign(_claims(), PRIV, headers=header, algorithm="ES256")
    with pytest.raises(TokenError):
        _verify(token)


def test_signature_by_another_key_refused() -> None:
    other_priv, _ = _ec_pair()
    with pytest.raises(TokenError):
        _verify(jws.sign(_claims(), other_priv, headers={"typ": TYP}, algorithm="ES256"))


def test_jwe_round_trip_and_compression_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pub = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    token = encrypt(b"payload", pub, typ="referral+jwt", kid="k")
    assert decrypt(token, priv, typ="referral+jwt") == b"payload"
    zipped = jwe.encrypt(
        b"payload",
        pub,
        algorithm="RSA-OAEP-256",
        encryption="A256GCM",
        zip="DEF",
        cty="referral+jwt",
    )
    with pytest.raises(TokenError, match="compressed"):
        decrypt(zipped.decode(), priv, typ="referral+jwt")
    weak = jwe.encrypt(
        b"payload", pub, algorithm="RSA1_5", encryption="A256GCM", cty="referral+jwt"
    )
    with pytest.raises(TokenError, match="not allowed"):
        decrypt(weak.decode(), priv, typ="referral+jwt")
