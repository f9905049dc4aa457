"""The edge of the instance-to-instance endpoint: media type and size, before any parsing.

* Media type: the transport document is JSON (docs/transnational.md, the OpenAPI request
  body), so the one accepted ``Content-Type`` is ``application/json``: type and subtype
  compared case-insensitively (RFC 9110 §8.3.1), with no parameter or with
  ``charset=utf-8`` only (value case-insensitive, quoted or not; JSON between systems is
  UTF-8, RFC 8259 §8.1). Anything else is refused (415): a missing header, another type
  (``text/plain``, ``application/jose``, ``multipart/form-data``, ``application/*+json``),
  another charset, any other parameter, several media types in one header, or the header
  given twice.
* Size: at most ``MAX_BODY_BYTES`` (``app/transnational/protocol.py``), or the
  application-wide ``PASSAGE_MAX_BODY_BYTES`` if lower. A declared ``Content-Length`` above
  it is refused before anything is read; a body without one (chunked) is read chunk by
  chunk and refused as soon as it passes the limit, so at most the limit plus one chunk is
  ever held in memory. The application-wide body-size middleware leaves this path to this
  module (``app/web/middleware.py``) so that these refusals are quarantined and audited.

Size is checked before the media type: a body over the limit is ``oversize`` (413)
whatever its type; a body within the limit but of another type is
``unsupported_media_type`` (415), read whole only to record its size and hash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request

ACCEPTED_MEDIA_TYPE = "application/json"
ACCEPTED_CHARSET = "utf-8"

_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\[\t -~])*"'
_PARAMETER = rf"\s*;\s*({_TCHARS})=({_TCHARS}|{_QUOTED})"
_MEDIA_TYPE = re.compile(rf"^\s*({_TCHARS})/({_TCHARS})((?:{_PARAMETER})*)\s*$")
_PARAMETERS = re.compile(_PARAMETER)
_CLAIMED_MAX = 100
_LENGTH = re.compile(r"[0-9]{1,15}")  # up to a petabyte: anything longer is not a length


@dataclass(frozen=True)
class EdgeRefusal:
    """A request refused before its body is parsed: only what is safe to keep."""

    code: str  # "oversize", "unsupported_media_type" or "malformed"
    message: str
    size: int  # bytes declared or read (for a body refused while streaming: read so far)
    sha256: str | None  # only when the body was read whole
    content_type: str | None


@dataclass(frozen=True)
class EdgeAccepted:
    raw: bytes
    content_type: str | None


def _parse(value: str) -> tuple[str, list[tuple[str, str]]] | None:
    match = _MEDIA_TYPE.match(value)
    if match is None:
        return None
    media_type = f"{match.group(1)}/{match.group(2)}".lower()
    parameters = []
    for name, raw in _PARAMETERS.findall(match.group(3)):
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        parameters.append((name.lower(), raw))
    return media_type, parameters


def describe_media_type(values: list[str]) -> str | None:
    """What the sender claimed, safe to keep: type/subtype, parameter names and the charset
    value only (a parameter value such as a multipart boundary is never kept)."""
    if not values:
        return None
    parsed = _parse(values[0]) if len(values) == 1 else None
    if parsed is None:
        return "(unparseable)" if len(values) == 1 else "(several headers)"
    media_type, parameters = parsed
    parts = [media_type]
    for name, value in parameters:
        charset = name == "charset" and re.fullmatch(_TCHARS, value) and len(value) <= 40
        parts.append(f"{name}={value.lower()}" if charset else name)
    described = "; ".join(parts)
    return described if len(described) <= _CLAIMED_MAX else described[: _CLAIMED_MAX - 3] + "..."


def media_type_problem(values: list[str]) -> str | None:
    """None when the Content-Type header(s) name the documented media type, else why not."""
    if not values:
        return "the request has no Content-Type; send application/json"
    if len(values) > 1:
        return "the request has more than one Content-Type header"
    parsed = _parse(values[0])
    if parsed is None:
        return "the Content-Type is not one media type; send application/json"
    media_type, parameters = parsed
    if media_type != ACCEPTED_MEDIA_TYPE:
        return "the media type is not accepted; send application/json"
    names = [name for name, _ in parameters]
    if len(names) != len(set(names)) or set(names) - {"charset"}:
        return "application/json takes no parameter other than charset=utf-8"
    if any(value.lower() != ACCEPTED_CHARSET for _, value in parameters):
        return "only charset=utf-8 is accepted"
    return None


async def read_body(request: Request, limit: int) -> EdgeAccepted | EdgeRefusal:
    """Check the declared size, read the body with the limit, then check the media type."""
    values = request.headers.getlist("content-type")
    claimed = describe_media_type(values)
    declared = request.headers.getlist("content-length")
    if declared:
        if len(declared) > 1 or not _LENGTH.fullmatch(declared[0]):
            return EdgeRefusal(
                "malformed", "the Content-Length header is not valid", 0, None, claimed
            )
        if int(declared[0]) > limit:
            return EdgeRefusal(
                "oversize",
                "the request is larger than allowed",
                int(declared[0]),
                None,
                claimed,
            )
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return EdgeRefusal(
                    "oversize", "the request is larger than allowed", len(body), None, claimed
                )
    except ClientDisconnect:
        return EdgeRefusal(
            "malformed", "the request body ended before it was complete", len(body), None, claimed
        )
    raw = bytes(body)
    problem = media_type_problem(values)
    if problem is not None:
        return EdgeRefusal(
            "unsupported_media_type",
            problem,
            len(raw),
            hashlib.sha256(raw).hexdigest(),
            claimed,
        )
    return EdgeAccepted(raw, claimed)
