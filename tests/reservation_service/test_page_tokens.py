"""Page tokens are opaque and tamper-evident: what one key issued reads back
for the same request; anything altered, made up, signed with another key or
used with another request is INVALID_ARGUMENT on ``page_token``."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservation_service.listing import PageTokens
from ticketing_common.errors import InvalidArgument

KEY = b"k" * 32
AFTER = (datetime(2026, 5, 1, 12, 0, tzinfo=UTC), "12345678-1234-5678-1234-567812345678")
QUERY: tuple[object, ...] = ("reservations", None, "ann", [])


def refusal(tokens: PageTokens, token: str, *query: object) -> str:
    with pytest.raises(InvalidArgument) as refused:
        tokens.decode(token, *query)
    assert refused.value.field == "page_token"
    return refused.value.violations[0].description


def test_a_token_reads_back_where_the_page_ended() -> None:
    tokens = PageTokens(KEY)
    token = tokens.encode(AFTER, *QUERY)
    assert tokens.decode(token, *QUERY) == (AFTER[0], uuid.UUID(AFTER[1]))
    assert tokens.decode("", *QUERY) is None  # the first page


def test_a_token_of_another_request_is_refused() -> None:
    tokens = PageTokens(KEY)
    token = tokens.encode(AFTER, *QUERY)
    assert "other parameters" in refusal(tokens, token, "reservations", None, "bob", [])


def test_an_altered_token_is_refused_though_it_parses() -> None:
    """The payload is plain base64 JSON: a client could move its start or
    point it at another user's list. The MAC refuses every such change."""
    tokens = PageTokens(KEY)
    payload, mac = tokens.encode(AFTER, *QUERY).split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["t"] = "2000-01-01T00:00:00+00:00"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    assert "not a token this service issued" in refusal(tokens, f"{forged}.{mac}", *QUERY)


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = PageTokens(b"o" * 32).encode(AFTER, *QUERY)
    assert "not a token this service issued" in refusal(PageTokens(KEY), token, *QUERY)


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b",
        "a.b.c",
        ".",
        "eyJ0IjoxfQ",  # base64 JSON, unsigned: the old format
        "eyJ0IjoxfQ.AAAAAAAAAAAAAAAAAAAAAA",
        "x" * 100_000,
        "é.é",
        "YQ.YQ\x00",
        "=.=",
    ],
)
def test_garbage_is_refused(token: str) -> None:
    assert "not a token this service issued" in refusal(PageTokens(KEY), token, *QUERY)


@given(st.text(max_size=600))
def test_any_text_is_a_token_of_ours_or_invalid_argument(token: str) -> None:
    tokens = PageTokens(KEY)
    try:
        assert tokens.decode(token, *QUERY) is None  # only "" reads as a first page
        assert token == ""
    except InvalidArgument as error:
        assert error.field == "page_token"
