"""``TicketingClient``: reserve, watch, and wait for the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from ticketing.v1 import gateway_service_pb2 as gw
from ticketing.v1 import gateway_service_pb2_grpc as gw_grpc
from ticketing.v1 import notifier_service_pb2 as ns
from ticketing.v1 import notifier_service_pb2_grpc as ns_grpc

from ._channel import TokenSource, bearer, open_channel
from ._outcomes import Accepted, Held, Outcome, QueueUpdate, Rejected, Update, answer_of
from ._retry import AttemptHook, RetryPolicy, Sleep, with_retries
from ._watch import WatchPolicy, WatchStream, follow


class TicketingClient:
    """A customer's client of the ticketing API, over one channel.

    ``target`` is the API's address (``host:port``, the load balancer in
    front of the services); ``token`` the caller's bearer token, or a
    function (plain or async) returning the current one. Plaintext unless
    ``credentials`` are given (``grpc.ssl_channel_credentials(...)``).
    ``on_attempt`` is told about every Reserve call as it ends, retries
    included (an ``Attempt``: its status code, the delay the server advised,
    the wait before the next). Over a channel of your own: ``over``.

    Use it as an async context manager, or call ``close()``::

        async with TicketingClient("tickets.example:443", token=..., credentials=...) as client:
            outcome = await client.reserve_and_wait(event_id, 2)
    """

    def __init__(
        self,
        target: str,
        token: TokenSource,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        retry: RetryPolicy | None = None,
        watch: WatchPolicy | None = None,
        options: Sequence[tuple[str, Any]] = (),
        rng: random.Random | None = None,
        on_attempt: AttemptHook | None = None,
    ) -> None:
        self._attach(
            open_channel(target, credentials, options),
            owns_channel=True,
            token=token,
            retry=retry,
            watch=watch,
            rng=rng,
            on_attempt=on_attempt,
        )

    @classmethod
    def over(
        cls,
        channel: grpc.aio.Channel,
        token: TokenSource | None = None,
        *,
        retry: RetryPolicy | None = None,
        watch: WatchPolicy | None = None,
        rng: random.Random | None = None,
        on_attempt: AttemptHook | None = None,
    ) -> Self:
        """A client over a channel the caller opened and keeps open.

        For many customers on one connection (a service acting for its
        users, a load generator): one channel, a client per customer with
        its own ``token``. Closing such a client leaves the channel open.
        Without a ``token`` the calls carry none, for a channel that
        authenticates its calls itself (call credentials, an interceptor).

        The channel's own configuration applies: open it with the options
        ``("grpc.enable_retries", 1)`` and ``("grpc.service_config",
        json.dumps(SERVICE_CONFIG))`` for gRPC's quick resends below the
        client's retries, as ``TicketingClient(target, ...)`` does.
        """
        client = cls.__new__(cls)
        client._attach(
            channel,
            owns_channel=False,
            token=token,
            retry=retry,
            watch=watch,
            rng=rng,
            on_attempt=on_attempt,
        )
        return client

    def _attach(
        self,
        channel: grpc.aio.Channel,
        *,
        owns_channel: bool,
        token: TokenSource | None,
        retry: RetryPolicy | None,
        watch: WatchPolicy | None,
        rng: random.Random | None,
        on_attempt: AttemptHook | None,
    ) -> None:
        self._channel = channel
        self._owns_channel = owns_channel
        self._gateway = gw_grpc.GatewayServiceStub(channel)
        self._notifier = ns_grpc.NotifierServiceStub(channel)
        self._token = token
        self._retry = retry or RetryPolicy()
        self._watch = watch or WatchPolicy()
        self._rng = rng or random.Random()  # for jitter
        self._sleep: Sleep = asyncio.sleep
        self._on_attempt = on_attempt

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel, calls in flight cancelled, if the client
        opened it; a channel given to ``over`` stays open."""
        if self._owns_channel:
            await self._channel.close(None)

    async def reserve(
        self,
        event_id: str,
        quantity: int,
        *,
        idempotency_key: str | None = None,
        section_id: str = "",
        seat_ids: Sequence[str] = (),
        accessible: bool = False,
    ) -> Accepted | Rejected:
        """Asks for ``quantity`` seats of ``event_id``.

        Of a seated event: the best ``quantity`` seats together anywhere, or
        in ``section_id``; or exactly ``seat_ids`` (``quantity`` 0 or their
        number, no ``section_id``), granted only if every one is free.
        ``accessible`` asks for seats the plan keeps for those who need them
        (best available then takes them and the others alike). The outcome's
        ``seats`` say which seats were given.

        Returns ``Accepted`` (queued: watch it for the outcome) or, when the
        event had no seat left, none held and nobody waiting, the final
        ``SoldOut`` at once (nothing was queued). Every attempt sends the
        same ``idempotency_key`` (a new one when not given): UNAVAILABLE
        does not say the request was lost, and a retry with the key is the
        same request, so it is retried, as are an attempt that ran out of
        time (DEADLINE_EXCEEDED), RESOURCE_EXHAUSTED with a ``RetryInfo``,
        after the advised delay, and the codes in ``RetryPolicy.also_retry``.
        Other refusals raise their ``ApiError`` subclass, and so does the
        last failure once ``RetryPolicy`` runs out.
        """
        request = gw.ReserveRequest(
            event_id=event_id,
            quantity=quantity,
            idempotency_key=idempotency_key or uuid.uuid4().hex,
            section_id=section_id,
            seat_ids=list(seat_ids),
            accessible=accessible,
        )

        async def attempt(timeout_s: float) -> gw.ReserveResponse:
            metadata = await bearer(self._token)
            return await self._gateway.Reserve(request, timeout=timeout_s, metadata=metadata)

        response = await with_retries(
            attempt,
            self._retry,
            sleep=self._sleep,
            rng=self._rng.random,
            on_attempt=self._on_attempt,
        )
        return answer_of(request, response)

    def watch(self, reservation_id: str) -> AsyncGenerator[Update, None]:
        """Every new state of the reservation, until it is settled.

        While it is queued: ``QueueUpdate`` whenever its place in line or
        estimated wait moves; then each decided state (``Held``,
        ``Confirmed``, a ``Rejected``, ...) once, in order, even across
        reconnects (by ``version``). A broken stream is reopened after the
        delay the service advises. A hold's stream stays open through the
        payment; ``break`` out of the loop to stop early.
        """

        async def open_stream(timeout_s: float) -> WatchStream:
            metadata = await bearer(self._token)
            return self._notifier.WatchReservation(
                ns.WatchReservationRequest(reservation_id=reservation_id),
                timeout=timeout_s,
                metadata=metadata,
            )

        return follow(open_stream, self._watch, sleep=self._sleep, rng=self._rng.random)

    async def reserve_and_wait(
        self,
        event_id: str,
        quantity: int,
        *,
        idempotency_key: str | None = None,
        section_id: str = "",
        seat_ids: Sequence[str] = (),
        accessible: bool = False,
        on_update: Callable[[Update], object] | None = None,
        wait_s: float | None = None,
    ) -> Outcome:
        """Reserves, then waits for what the caller can act on.

        Returns the first of:

        * the gateway's immediate ``SoldOut`` (nothing queued);
        * ``Held``: the seats are held until ``deadline`` for ``amount``;
          paying is up to the caller (``PaymentService.Pay``), and the
          reservation goes on to ``Confirmed`` or ``Expired`` without this call;
        * a settled state: ``Confirmed`` (free events, or a paid hold),
          a ``Rejected``, ``Expired`` or ``Cancelled`` (a key reused for a
          reservation that already ended there).

        ``on_update`` is called with every update before that: the place in
        line from Reserve's answer (version 0), then each ``QueueUpdate`` and
        any intermediate state. ``wait_s`` bounds the wait after Reserve
        (``TimeoutError``); by default it lasts as long as the queue keeps
        the request (the event's queue TTL). ``section_id``, ``seat_ids``
        and ``accessible`` ask for seats of a seated event, as in
        ``reserve``: ``Held`` and ``Confirmed`` carry them (``seats``), and
        what refuses them is a ``SeatTaken`` or ``NoSeatsTogether``.
        """
        answer = await self.reserve(
            event_id,
            quantity,
            idempotency_key=idempotency_key,
            section_id=section_id,
            seat_ids=seat_ids,
            accessible=accessible,
        )
        if isinstance(answer, Rejected):
            return answer
        if on_update is not None and answer.position is not None:
            on_update(QueueUpdate(answer.position, None, answer.reservation_id, 0))
        async with (
            asyncio.timeout(wait_s),
            contextlib.aclosing(self.watch(answer.reservation_id)) as updates,
        ):
            async for update in updates:
                if isinstance(update, Held) or (isinstance(update, Outcome) and update.settled):
                    return update
                if on_update is not None:
                    on_update(update)
        raise AssertionError("a watch ends only after a settled state")  # pragma: no cover
