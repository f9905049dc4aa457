"""HTTP between instances. The partner's address always comes from the directory (set by an
administrator), never from a message; redirects are not followed."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from app.errors import InvalidInput

MESSAGES_PATH = "/api/v1/exchange/messages"
KEYS_PATH = "/api/v1/exchange/keys"
TIMEOUT_SECONDS = 15.0
USER_AGENT = "passage-exchange/1"


def check_base_url(url: str, *, production: bool) -> str:
    """Scheme and host only (with an optional path prefix); https in production."""
    parts = urlsplit(url.strip())
    allowed = ("https",) if production else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname:
        raise InvalidInput(
            "the partner address must be an https:// URL"
            if production
            else "the partner address must be an http(s):// URL"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidInput("the partner address must not hold credentials, a query or a fragment")
    return url.strip().rstrip("/")


def make_client() -> httpx.Client:
    return httpx.Client(
        timeout=TIMEOUT_SECONDS,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )


def post_message(
    client: httpx.Client, base_url: str, message: str, attachments: list[str]
) -> httpx.Response:
    return client.post(
        base_url.rstrip("/") + MESSAGES_PATH,
        json={"message": message, "attachments": attachments},
    )


def fetch_published_keys(client: httpx.Client, base_url: str) -> list[dict[str, Any]]:
    response = client.get(base_url.rstrip("/") + KEYS_PATH)
    response.raise_for_status()
    document = response.json()
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ValueError("the partner did not publish a key list")
    return [k for k in keys if isinstance(k, dict)]
