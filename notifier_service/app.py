"""Composition root of the notifier."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from ticketing.v1 import notifier_service_pb2_grpc as pb_grpc
from ticketing_common import logs, tracing
from ticketing_common.auth import TokenVerifier
from ticketing_common.grpc_server import Server, wait_for_signal
from ticketing_common.kafka import group_offsets
from ticketing_common.metrics import observe
from ticketing_common.storage.db import create_pool

from . import metrics
from .events import EventWatch
from .feeds import Feed, on_request, on_result, seek_to_end, seek_to_group_commits
from .hub import PendingRequests, WatchHub
from .positions import QueuePositions
from .seat_maps import SeatMapWatch
from .servicer import NotifierServicer
from .settings import NotifierSettings

SERVICES = ("ticketing.v1.NotifierService",)


async def run(settings: NotifierSettings) -> None:
    logs.configure("notifier_service", settings.server.log_level)
    tracing.configure("notifier_service", settings.server)
    kafka = settings.kafka
    instance = settings.server.instance_id
    async with AsyncExitStack() as stack:
        pool = await create_pool(
            settings.postgres_dsn,
            max_size=settings.pool_size,
            acquire_timeout_s=settings.pool_acquire_timeout_s,
        )
        stack.push_async_callback(pool.close)
        hub = WatchHub()
        pending = PendingRequests(settings.pending_ttl_s)
        positions = QueuePositions(window_s=settings.eta_window_s, ttl_s=settings.pending_ttl_s)
        events = EventWatch(
            pool, coalesce_s=settings.event_coalesce_s, refresh_s=settings.event_refresh_s
        )
        seat_maps = SeatMapWatch(
            pool, coalesce_s=settings.event_coalesce_s, refresh_s=settings.seat_map_refresh_s
        )

        def touched(event_id: str) -> None:
            events.touched(event_id)
            seat_maps.touched(event_id)

        results = Feed(
            kafka,
            kafka.results_topic,
            client_id=f"notifier-{instance}",
            seek=seek_to_end,
            handle=on_result(hub, pending, positions, touched),
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            linger_s=kafka.fetch_linger_ms / 1000,
        )
        requests = Feed(
            kafka,
            kafka.requests_topic,
            client_id=f"notifier-{instance}",
            seek=seek_to_group_commits(kafka, kafka.consumer_group),
            handle=on_request(hub, pending, positions),
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            linger_s=kafka.fetch_linger_ms / 1000,
        )
        # Both feeds positioned first, then the waitlist read: whatever is
        # waitlisted later arrives on the results feed, and whatever was
        # waitlisted before is in what is read (the feeds are only read,
        # and handled, once they run).
        for feed in (results, requests):
            await feed.start()
            stack.push_async_callback(feed.stop)
        await positions.load_waitlist(pool)

        async def committed() -> dict[int, int]:
            found = await group_offsets(
                kafka, kafka.consumer_group, requests.partitions, retry_for_s=0
            )
            return {tp.partition: o for tp, o in found.items() if o is not None}

        observe(metrics.WATCH_STREAMS.labels("reservation"), lambda: hub.watching)
        observe(metrics.WATCH_STREAMS.labels("event"), lambda: events.watching)
        observe(metrics.WATCH_STREAMS.labels("seat_map"), lambda: seat_maps.watching)
        observe(metrics.FEED_LAG.labels(kafka.requests_topic), requests.lag)
        observe(metrics.FEED_LAG.labels(kafka.results_topic), results.lag)
        observe(metrics.QUEUED_REQUESTS, lambda: len(positions))
        verifier = TokenVerifier(settings.auth.verifier_config())
        server = Server("notifier_service", settings.server, verifier=verifier)
        pb_grpc.add_NotifierServiceServicer_to_server(
            NotifierServicer(
                pool=pool,
                hub=hub,
                pending=pending,
                requests_feed=requests,
                recheck_s=settings.recheck_s,
                catch_up_timeout_s=settings.catch_up_timeout_s,
                events=events,
                seat_maps=seat_maps,
                positions=positions,
                position_interval_s=settings.position_interval_s,
                max_watches_per_subject=settings.max_watches_per_subject,
            ),
            server.grpc,
        )
        async with asyncio.TaskGroup() as group:
            feeds = [
                group.create_task(results.run()),
                group.create_task(requests.run()),
                group.create_task(events.run()),
                group.create_task(seat_maps.run()),
                group.create_task(
                    positions.run(pool, committed, refresh_s=settings.position_refresh_s)
                ),
            ]
            # Serve only once both feeds are positioned: from here on nothing is missed.
            await server.start(SERVICES)
            stack.push_async_callback(server.stop, SERVICES)
            await wait_for_signal()
            # Streams get the grace period with the feeds still running.
            await server.stop(SERVICES)
            for task in feeds:
                task.cancel()
