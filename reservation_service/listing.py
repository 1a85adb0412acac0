"""Listing events and reservations, a page at a time (Google's AIP-158).

A page token is opaque to clients: where the previous page ended (its last
row's sort key) and a fingerprint of the request it belongs to, so a token
used with other parameters is refused rather than silently mixing lists;
signed with the service's key (HMAC-SHA256), so a token altered or made up
is refused before anything in it is read. Pages are read by keyset
(``WHERE (sort key) > last``), so a page costs the same however deep into
the list it is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from ticketing_common.domain import Event, Reservation, Status
from ticketing_common.errors import InvalidArgument
from ticketing_common.storage.queries import EVENT_COLUMNS, RESERVATION_COLUMNS

DEFAULT_PAGE = 50
MAX_PAGE = 1_000


def page_size(requested: int) -> int:
    """AIP-158: 0 means the default, above the maximum is the maximum."""
    if requested < 0:
        raise InvalidArgument("page_size", f"must not be negative, got {requested}")
    return DEFAULT_PAGE if requested == 0 else min(requested, MAX_PAGE)


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


# Longest token we issue is about 150 characters; anything much longer is not ours.
MAX_TOKEN = 512
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Binds the MAC to its use: the same key signing anything else never makes a token.
_PURPOSE = b"ticketing page token v1\x00"
_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    """Issues and reads page tokens: ``<payload>.<mac>``, both base64url, the
    MAC an HMAC-SHA256 of the payload with ``secret``."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, _PURPOSE + payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, after: tuple[datetime, str], *query: object) -> str:
        payload = json.dumps(
            {"t": after[0].isoformat(), "id": after[1], "q": _fingerprint(*query)},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, token: str, *query: object) -> tuple[datetime, uuid.UUID] | None:
        """Where the page starts (None: the first page); INVALID_ARGUMENT for a
        token that is not ours (malformed, altered, or signed with another
        key) or belongs to another request."""
        if not token:
            return None
        payload = self._verified(token)
        try:
            body = json.loads(payload)
            after = (datetime.fromisoformat(body["t"]), uuid.UUID(body["id"]))
            fingerprint = body["q"]
        except (ValueError, KeyError, TypeError):
            raise _not_ours() from None
        if fingerprint != _fingerprint(*query):
            raise InvalidArgument(
                "page_token",
                "belongs to a request with other parameters; start from the first page",
            )
        return after

    def _verified(self, token: str) -> bytes:
        if len(token) > MAX_TOKEN or not _TOKEN.fullmatch(token):
            raise _not_ours()
        encoded_payload, encoded_mac = token.split(".")
        try:
            payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
        except ValueError:
            raise _not_ours() from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise _not_ours()
        return payload


def _not_ours() -> InvalidArgument:
    return InvalidArgument(
        "page_token",
        "is not a token this service issued (or was issued with a key since changed); "
        "start from the first page",
    )


async def list_events(
    pool: asyncpg.Pool, tokens: PageTokens, size: int, token: str
) -> tuple[list[Event], str]:
    after = tokens.decode(token, "events")
    rows = await pool.fetch(
        f"""SELECT {EVENT_COLUMNS} FROM events
            WHERE $1::timestamptz IS NULL OR (created_at, event_id) > ($1, $2)
            ORDER BY created_at, event_id LIMIT $3""",
        after[0] if after else None,
        after[1] if after else None,
        size + 1,
    )
    events = [Event.from_row(row) for row in rows[:size]]
    more = len(rows) > size
    last = rows[size - 1] if more else None
    next_token = (
        tokens.encode((last["created_at"], str(last["event_id"])), "events") if last else ""
    )
    return events, next_token


async def list_reservations(
    pool: asyncpg.Pool,
    tokens: PageTokens,
    *,
    event_id: str | None,
    user_id: str | None,
    statuses: Sequence[Status],
    size: int,
    token: str,
) -> tuple[list[Reservation], str]:
    """One page of an event's reservations, or of a user's (or both)."""
    query = ("reservations", event_id, user_id, sorted(statuses))
    after = tokens.decode(token, *query)
    rows = await pool.fetch(
        f"""SELECT {RESERVATION_COLUMNS} FROM reservations
            WHERE ($1::uuid IS NULL OR event_id = $1)
              AND ($2::text IS NULL OR user_id = $2)
              AND (cardinality($3::text[]) = 0 OR status = ANY($3::text[]))
              AND ($4::timestamptz IS NULL OR (accepted_at, reservation_id) > ($4, $5))
            ORDER BY accepted_at, reservation_id LIMIT $6""",
        uuid.UUID(event_id) if event_id else None,
        user_id,
        [s.value for s in statuses],
        after[0] if after else None,
        after[1] if after else None,
        size + 1,
    )
    page = [Reservation.from_row(row) for row in rows[:size]]
    last = rows[size - 1] if len(rows) > size else None
    next_token = (
        tokens.encode((last["accepted_at"], str(last["reservation_id"])), *query) if last else ""
    )
    return page, next_token
