"""The broker under the stack is Apache Kafka, and the deploy script that
creates the topics in production works against it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from ticketing_common.kafka import new_producer
from ticketing_tools.stack import LocalStack


async def test_the_idempotent_acks_all_producer_is_accepted(stack: LocalStack) -> None:
    producer = new_producer(stack.kafka, client_id="test-idempotent")
    await producer.start()
    try:
        first = await producer.send_and_wait(stack.kafka.dead_letter_topic, b"probe", key=b"k")
        # The broker granted a producer id: its retries are de-duplicated by it.
        assert producer._txn_manager is not None
        assert producer._txn_manager.producer_id >= 0
        second = await producer.send_and_wait(stack.kafka.dead_letter_topic, b"probe", key=b"k")
    finally:
        await producer.stop()
    assert second.partition == first.partition
    assert second.offset == first.offset + 1


async def test_the_topic_script_creates_the_four_topics_and_can_run_again(
    stack: LocalStack, pytestconfig: pytest.Config
) -> None:
    suffix = uuid.uuid4().hex[:8]
    names = {
        "TICKETING_KAFKA_REQUESTS_TOPIC": f"script-requests-{suffix}",
        "TICKETING_KAFKA_RESULTS_TOPIC": f"script-results-{suffix}",
        "TICKETING_KAFKA_DEAD_LETTER_TOPIC": f"script-dlq-{suffix}",
        "TICKETING_KAFKA_PAYMENTS_TOPIC": f"script-payments-{suffix}",
    }
    env = {
        "PATH": os.environ["PATH"],
        "TICKETING_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "PARTITIONS": "3",
        "REPLICATION_FACTOR": str(stack.kafka.replication_factor),
        "MIN_INSYNC_REPLICAS": "1",
        **(
            {"KAFKA_COMMAND_CONFIG": str(stack.kafka_admin_properties)}
            if stack.kafka_admin_properties
            else {}
        ),
        **names,
    }
    for _ in range(2):  # a second run leaves the existing topics alone
        done = await asyncio.to_thread(
            subprocess.run,
            ["bash", str(pytestconfig.rootpath / "deploy" / "kafka-topics.sh")],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr

    admin = AIOKafkaAdminClient(**stack.kafka.client_options())
    await admin.start()
    try:
        topics = await admin.describe_topics(list(names.values()))
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names.values()]
        )
    finally:
        await admin.close()
    assert {t["topic"]: len(t["partitions"]) for t in topics} == dict.fromkeys(names.values(), 3)
    min_isr = {
        resource[3]: dict((entry[0], entry[1]) for entry in resource[4])["min.insync.replicas"]
        for response in configs
        for resource in response.resources
    }
    assert min_isr == dict.fromkeys(names.values(), "1")
