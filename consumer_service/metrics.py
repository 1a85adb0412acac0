"""The consumer's own metrics (decisions, lock waits and fencing refusals
are counted where they happen, in ``ticketing_common.metrics``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from ticketing_common.metrics import SCRAPE_RACES

DEAD_LETTERS = Counter(
    "ticketing_dead_letters_total",
    "Records sent to the dead-letter topic, by why (undecodable, forged, persistent).",
    ["reason"],
)
FORGED_RECORDS = Counter(
    "ticketing_forged_records_total",
    "Requests-topic records that fail verification and are dead-lettered as forged, by why "
    "(unsigned, unknown_key, bad_mac): a writer other than the gateways, or a gateway signing "
    "with a key this consumer does not accept.",
    ["reason"],
)
HOLD_EXPIRIES = Counter(
    "ticketing_hold_expiries_total",
    "Seat holds that expired unpaid and gave their seats back.",
)
PAUSED = Gauge(
    "ticketing_consumer_paused",
    "1 while the consumer has paused its partitions because PostgreSQL or Redis fails.",
)


class Lag(Collector):
    """``ticketing_consumer_lag_records``: per assigned partition, the records
    between the group's commit and the partition's end as last fetched.
    Read at scrape time, from the scraping thread: a view that changes under
    it (a rebalance) is skipped for that scrape."""

    def __init__(
        self, consumer: AIOKafkaConsumer, committed: Callable[[TopicPartition], int | None]
    ) -> None:
        self._consumer = consumer
        self._committed = committed

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ticketing_consumer_lag_records",
            "Records of the partition not yet decided and committed by this consumer's group.",
            labels=["topic", "partition"],
        )
        try:
            for tp in sorted(self._consumer.assignment()):
                end = self._consumer.highwater(tp)
                done = self._committed(tp)
                if end is not None and done is not None:
                    family.add_metric([tp.topic, str(tp.partition)], max(0, end - done))
        except SCRAPE_RACES:  # skipped this scrape
            pass
        yield family


def register_lag(
    consumer: AIOKafkaConsumer, committed: Callable[[TopicPartition], int | None]
) -> None:
    REGISTRY.register(Lag(consumer, committed))
