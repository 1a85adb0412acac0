"""The payment provider behind a small interface, and a local stand-in.

A real provider plugs in by implementing ``Provider``. Every call carries the
payment id as its idempotency key: the saga may repeat a call after a crash,
and the provider must not authorize, capture or refund twice. What the saga
asks of a real provider besides:

- ``void`` releases whatever authorization exists for the payment id,
  including one whose authorize call is still in flight when the saga gives
  up on it (providers that key authorizations by idempotency key do);
- ``capture`` of an authorization it granted succeeds; a failure is retried
  by the sweeper until it does (a capture refused for good, e.g. an
  authorization the provider let lapse, needs an operator: the payment stays
  CAPTURING and the ledger shows it in flight).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Protocol

import asyncpg


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


METHODS = ("test-ok", "test-declined", "test-timeout", "test-slow")


class LocalProvider:
    """Stands in for a payment provider. It keeps its own books, as a real
    provider would (table ``provider_operations``: one row per payment and
    operation, so a repeated call is recognised), and knows four test
    methods: ``test-ok`` authorizes, ``test-declined`` declines,
    ``test-timeout`` never answers, ``test-slow`` authorizes after
    ``slow_delay_s``."""

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
        return Authorization(approved=True, reference=f"local-{payment_id}")

    async def capture(self, payment_id: str, reference: str, amount_minor: int) -> None:
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
