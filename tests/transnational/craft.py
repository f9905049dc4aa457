"""Hand-made tokens for the refusal tests: real keys, real crypto, each with one defect.

The test plays a partner instance (it reads that instance's private keys from its key
directory) or an attacker who only knows public keys. JWEs are assembled by hand so any
protected header can be tried, exactly as a hostile sender would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
import zlib
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jose import jws

from app.transnational.keys import parse_public_key

TODAY = time.strftime("%Y-%m-%d", time.gmtime())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def ec_pair() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def rsa_public() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def kid_of(public_pem: str, use: str) -> str:
    return parse_public_key(public_pem, use).kid


def referral_claims(
    issuer: str, audience: str, *, jti: str | None = None, given_name: str = "Amina", **over: Any
) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + 3600,
        "jti": jti or str(uuid.uuid4()),
        "passage": 1,
        "msg": "referral",
        "thread": str(uuid.uuid4()),
        "body": {
            "purpose": "request_for_information",
            "sender": {"country": "PT", "institution": "NRM PT", "case_reference": "PSG-TEST-0001"},
            "consent": [
                {
                    "id": str(uuid.uuid4()),
                    "purpose": "data_sharing_transnational",
                    "scope": ["identity"],
                    "given_on": TODAY,
                }
            ],
            "groups": ["identity"],
            "context": {"age_band": "adult", "classification": "trafficking"},
            "data": {"victim": {"given_name": given_name, "nationalities": ["SN"]}, "case": {}},
            "attachments": [],
        },
    }
    claims.update(over)
    return claims


def sign(
    claims: dict[str, Any], private_pem: str, *, kid: str, typ: str = "referral+jwt", **headers: Any
) -> str:
    return str(
        jws.sign(
            claims, private_pem, headers={"kid": kid, "typ": typ, **headers}, algorithm="ES256"
        )
    )


def unsigned(claims: dict[str, Any], typ: str = "referral+jwt") -> str:
    return b64json({"alg": "none", "typ": typ}) + "." + b64json(claims) + "."


def hs256_with_public_key(claims: dict[str, Any], public_pem: str, *, kid: str) -> str:
    signing_input = (
        b64json({"alg": "HS256", "typ": "referral+jwt", "kid": kid}) + "." + b64json(claims)
    )
    mac = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def encrypt(
    plaintext: bytes,
    recipient_public_pem: str,
    *,
    kid: str,
    cty: str = "referral+jwt",
    compress: bool = False,
    **extra_header: Any,
) -> str:
    """A compact JWE (RSA-OAEP-256 + A256GCM) with any protected header."""
    header: dict[str, Any] = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": kid, "cty": cty}
    header.update(extra_header)
    if compress:
        header["zip"] = "DEF"
        plaintext = zlib.compress(plaintext)[2:-4]  # raw DEFLATE, as RFC 7516 says
    protected = b64json(header)
    cek, iv = os.urandom(32), os.urandom(12)
    public = serialization.load_pem_public_key(recipient_public_pem.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    wrapped = public.encrypt(
        cek,
        padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
        ),
    )
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode())
    return ".".join([protected, b64(wrapped), b64(iv), b64(sealed[:-16]), b64(sealed[-16:])])


def tamper_payload(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["body"]["data"]["victim"].update(changes)
    return ".".join([header, b64json(claims), signature])


def flip_ciphertext(token: str) -> str:
    parts = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[3] + "=" * (-len(parts[3]) % 4)))
    raw[0] ^= 0x01
    parts[3] = b64(bytes(raw))
    return ".".join(parts)
