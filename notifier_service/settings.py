"""The notifier's settings (``TICKETING_NOTIFIER_*``, and the shared ones)."""

from __future__ import annotations

from pydantic import Field

from ticketing_common.config import (
    AuthSettings,
    KafkaSettings,
    PostgresClient,
    ServerSettings,
    settings_config,
)


class NotifierSettings(PostgresClient):
    model_config = settings_config("NOTIFIER")

    auth: AuthSettings = AuthSettings.with_defaults()
    server: ServerSettings = ServerSettings.with_defaults(port=50091, metrics_port=9091)
    kafka: KafkaSettings = KafkaSettings.with_defaults()
    pool_size: int = Field(8, ge=1, description="PostgreSQL pool size per process")
    event_coalesce_s: float = Field(
        0.25,
        gt=0,
        le=10,
        description="WatchEvent and WatchSeatMap: a watched event touched by decisions is re-read "
        "(one query for all its watchers) and sent at most this often",
    )
    seat_map_refresh_s: float = Field(
        2.0,
        gt=0,
        description="WatchSeatMap: every watched seat map is read for new changes this often, "
        "should a result record be missed",
    )
    event_refresh_s: float = Field(
        1.0,
        gt=0,
        description="WatchEvent: every watched event is re-read this often, for changes no "
        "reservation announces (sale paused, capacity added)",
    )
    # A safety net under the live feed.
    recheck_s: float = Field(
        5.0,
        ge=0.1,
        description="how often PostgreSQL is re-read for a watched, undecided request",
    )
    max_watches_per_subject: int = Field(
        20,
        ge=0,
        description="concurrent `WatchReservation` streams one customer may hold on a "
        "notifier (administrators are not capped); 0 is no cap. Past it: "
        "`RESOURCE_EXHAUSTED`",
    )
    position_interval_s: float = Field(
        1.0,
        ge=0.05,
        description="WatchReservation: while a request is queued, its position and estimated "
        "wait go out when they change, at most this often per stream",
    )
    position_refresh_s: float = Field(
        1.0,
        gt=0,
        description="queue positions: how often the events' priority tiers and sale state are "
        "re-read, and requests the consumers committed past are checked",
    )
    eta_window_s: float = Field(
        10.0,
        ge=1,
        description="queue positions: the estimated wait comes from the event's decisions over "
        "this last stretch",
    )
    pending_ttl_s: float = Field(
        3_600.0, ge=1, description="how long an accepted, undecided request is remembered"
    )
    # An id seen nowhere may be in a part of the requests topic the feed has
    # not read yet.
    catch_up_timeout_s: float = Field(
        3.0,
        ge=0,
        description="longest wait for the requests feed to catch up with the broker before "
        "`NOT_FOUND`",
    )
