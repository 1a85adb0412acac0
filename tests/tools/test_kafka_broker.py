"""The local Kafka nodes' configuration: replication follows the cluster size,
and every node names the same controller quorum."""

from __future__ import annotations

from pathlib import Path

from ticketing_tools.stack import kafka_broker
from ticketing_tools.stack.kafka_broker import KafkaNode

PASSWORD = "admin-secret"


def parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def nodes(count: int) -> list[KafkaNode]:
    return [KafkaNode(i, 9000 + i, 9100 + i, Path(f"/data/kafka-{i}")) for i in range(1, count + 1)]


def test_a_single_node_is_controller_and_broker_with_one_copy() -> None:
    (node,) = nodes(1)
    props = parse(kafka_broker.server_properties(node, [node], PASSWORD))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9101"
    assert props["advertised.listeners"] == "CLIENT://127.0.0.1:9001"
    assert props["log.dirs"] == "/data/kafka-1/data"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert "broker.session.timeout.ms" not in props


def test_a_three_node_cluster_keeps_three_copies_two_in_sync() -> None:
    cluster = nodes(3)
    configs = [parse(kafka_broker.server_properties(node, cluster, PASSWORD)) for node in cluster]
    voters = "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    assert {c["controller.quorum.voters"] for c in configs} == {voters}
    assert [c["node.id"] for c in configs] == ["1", "2", "3"]
    for config in configs:
        assert config["default.replication.factor"] == "3"
        assert config["offsets.topic.replication.factor"] == "3"
        assert config["transaction.state.log.min.isr"] == "2"
        assert config["min.insync.replicas"] == "2"
        assert config["unclean.leader.election.enable"] == "false"
        assert int(config["broker.session.timeout.ms"]) < 9_000


def test_every_listener_authenticates_and_the_authorizer_denies_by_default() -> None:
    (node,) = nodes(1)
    props = parse(kafka_broker.server_properties(node, [node], PASSWORD))
    protocols = dict(pair.split(":") for pair in props["listener.security.protocol.map"].split(","))
    assert protocols == {"CLIENT": "SASL_PLAINTEXT", "CONTROLLER": "SASL_PLAINTEXT"}
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512,PLAIN"
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["super.users"] == "User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    # The super user's password is in the (0600) file, for PLAIN only.
    assert f'user_admin="{PASSWORD}"' in props["listener.name.client.plain.sasl.jaas.config"]


def test_cluster_ids_are_kraft_ids_the_formatter_accepts() -> None:
    ids = {kafka_broker._cluster_id() for _ in range(2_000)}
    assert len(ids) == 2_000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
