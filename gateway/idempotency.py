"""Idempotency keys at the door: a key stands for one request (AIP-155).

A retry with the same key and the same parameters is the same request: it is
appended again (the consumer recognises the duplicate by reservation id) and
gets the same reservation id. The same key with another quantity (or, on a
seated event, other seats or section) is refused.

The record sits in Redis (``storage.accepted``). When Redis does not answer
within ``timeout_s`` the gateway accepts without the check rather than stop
the sale: the request is still applied at most once, under its first
parameters, and polling sees it only once it is decided.
"""

from __future__ import annotations

import asyncio
import dataclasses

import structlog

from ticketing_common.decisions import Request
from ticketing_common.errors import IdempotencyKeyReused
from ticketing_common.failures import is_transient
from ticketing_common.storage.accepted import AcceptedRequests

log = structlog.get_logger(__name__)


class IdempotencyKeys:
    def __init__(self, accepted: AcceptedRequests, *, timeout_s: float) -> None:
        self._accepted = accepted
        self._timeout_s = timeout_s

    async def admit(self, request: Request, *, decided_sequence: int = 0) -> Request:
        """The request to append, numbered in its event's line: ``request``
        itself, or for a retry the first one sent (its accept time, so a
        retry does not restart the queue TTL, and its number). Raises
        IdempotencyKeyReused when the key stood for another quantity."""
        try:
            async with asyncio.timeout(self._timeout_s):
                first = await self._accepted.claim(request, decided_sequence=decided_sequence)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning(
                "idempotency_check_skipped",
                reservation_id=request.reservation_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            return request
        if first.shape != request.shape:
            what = f"quantity {first.quantity}"
            if "|" in first.shape:
                what += f" ({first.shape.partition('|')[2]})"
            raise IdempotencyKeyReused(
                f"idempotency_key {request.idempotency_key!r} was used for {what} on this "
                "event; use a new key for another request",
                metadata={
                    "reservation_id": request.reservation_id,
                    "quantity": str(first.quantity),
                },
            )
        return dataclasses.replace(request, accepted_at=first.accepted_at, sequence=first.sequence)

    async def known(self, reservation_id: str) -> bool:
        """Whether the key already stands for a request (a retry). If Redis
        does not answer in time: as if not (logged)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._accepted.known(reservation_id)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning(
                "idempotency_lookup_skipped", reservation_id=reservation_id, error=repr(exc)
            )
            return False

    async def queued(self, reservation_id: str, *, within_s: float | None = None) -> None:
        """Marks the request as in the queue (polls now answer QUEUED),
        waiting at most ``within_s`` (what is left of the caller's deadline):
        the mark is sent even when the caller stops waiting for it."""
        wait_s = self._timeout_s if within_s is None else max(0.0, min(self._timeout_s, within_s))
        try:
            async with asyncio.timeout(wait_s):
                await self._accepted.mark_queued(reservation_id)
        except TimeoutError:
            # Still sent with its batch; only its confirmation is not awaited.
            log.warning("queued_mark_unconfirmed", reservation_id=reservation_id)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("queued_mark_skipped", reservation_id=reservation_id, error=repr(exc))
