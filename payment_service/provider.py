"""The payment provider behind a small interface, and a local stand-in.

A real provider plugs in by implementing ``Provider``. Every call carries the
payment id as its idempotency key: the saga may repeat a call after a crash,
and the provider must not authorize, capture or refund twice. What the saga
asks of a real provider besides:

- ``void`` releases whatever authorization exists for the payment id,
  including one whose authorize call is still in flight when the saga gives
  up on it (providers that key authorizations by idempotency key do);
- ``capture`` of an authorization it granted succeeds. A failure (an
  exception; ``ProviderError`` says whether trying again may help) is
  retried within the saga's retry budget (``retries``); a capture, void or
  refund refused for good, e.g. an authorization the provider let lapse, or
  failing past the budget, needs an operator: the payment stays where it
  stands, flagged, and ``ticketing-admin payments`` lists it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Protocol

import asyncpg


class ProviderError(Exception):
    """The provider refused or failed an operation. ``retriable``: trying
    again later may succeed (an outage, a rate limit); False: it will not
    (the payment needs an operator at once)."""

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


@dataclass(frozen=True, slots=True)
class Authorization:
    approved: bool
    # The provider's reference for an approved authorization.
    reference: str = ""
    # Why it was declined.
    reason: str = ""


class Provider(Protocol):
    def check_method(self, method: str) -> str | None:
        """Why ``method`` cannot be charged, or None."""

    async def authorize(
        self, payment_id: str, method: str, amount_minor: int, currency: str
    ) -> Authorization: ...

    async def capture(self, payment_id: str, reference: str, amount_minor: int) -> None: ...

    async def void(self, payment_id: str, reference: str | None) -> None:
        """Releases an authorization; a payment never authorized is a no-op."""

    async def refund(self, payment_id: str, reference: str, amount_minor: int) -> None: ...


METHODS = ("test-ok", "test-declined", "test-timeout", "test-slow", "test-capture-fails")

# The reference of an authorization whose every capture fails (test-capture-fails).
UNCAPTURABLE = "local-uncapturable-"


class LocalProvider:
    """Stands in for a payment provider. It keeps its own books, as a real
    provider would (table ``provider_operations``: one row per payment and
    operation, so a repeated call is recognised), and knows five test
    methods: ``test-ok`` authorizes, ``test-declined`` declines,
    ``test-timeout`` never answers, ``test-slow`` authorizes after
    ``slow_delay_s``, ``test-capture-fails`` authorizes but every capture
    fails (as at a provider's outage), and its voids succeed."""

    def __init__(self, pool: asyncpg.Pool, *, slow_delay_s: float) -> None:
        self._pool = pool
        self._slow_delay_s = slow_delay_s

    def check_method(self, method: str) -> str | None:
        if method in METHODS:
            return None
        return f"the local provider takes {', '.join(METHODS)}; got {method[:64]!r}"

    async def authorize(
        self, payment_id: str, method: str, amount_minor: int, currency: str
    ) -> Authorization:
        if method == "test-timeout":
            await asyncio.Event().wait()  # never answers; the saga gives up
        if method == "test-slow":
            await asyncio.sleep(self._slow_delay_s)
        if method == "test-declined":
            await self._record(payment_id, "declined", amount_minor)
            return Authorization(approved=False, reason="declined by the issuer (test-declined)")
        await self._record(payment_id, "authorized", amount_minor)
        prefix = UNCAPTURABLE if method == "test-capture-fails" else "local-"
        return Authorization(approved=True, reference=f"{prefix}{payment_id}")

    async def capture(self, payment_id: str, reference: str, amount_minor: int) -> None:
        if reference.startswith(UNCAPTURABLE):
            raise ProviderError("capture failed: the provider is unavailable (test-capture-fails)")
        await self._record(payment_id, "captured", amount_minor)

    async def void(self, payment_id: str, reference: str | None) -> None:
        await self._record(payment_id, "voided", 0)

    async def refund(self, payment_id: str, reference: str, amount_minor: int) -> None:
        await self._record(payment_id, "refunded", amount_minor)

    async def _record(self, payment_id: str, operation: str, amount_minor: int) -> None:
        await self._pool.execute(
            """INSERT INTO provider_operations (payment_id, operation, amount_minor)
               VALUES ($1, $2, $3) ON CONFLICT (payment_id, operation) DO NOTHING""",
            uuid.UUID(payment_id),
            operation,
            amount_minor,
        )
