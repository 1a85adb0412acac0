"""Apache Kafka for the local stack: KRaft nodes (each a combined controller
and broker) run from the jars ``make setup`` assembled with Maven.

One node by default; three for the fault suite's cluster (replication factor
3, ``min.insync.replicas=2``). Each node keeps its log directory inside the
stack's data directory, so a node restarted in place comes back with
everything it had acknowledged.

Every connection authenticates. The ``admin`` super user is defined in each
node's configuration (SASL/PLAIN, a 0600 file): the nodes use it among
themselves, and the launcher uses it to create the services' SCRAM users and
their ACLs (``ticketing_tools.kafka_access``), so no password is ever on a
command line. The standard authorizer then allows each service's user only
what the ACLs grant.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..private import write_private
from .processes import Child, free_ports, run_once

MIN_JAVA = 17
# The broker class and the storage formatter of Kafka 4.x.
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
# The services' mechanism; the super user's is PLAIN (it exists before any
# SCRAM credential can be stored).
SCRAM = "SCRAM-SHA-512"
SUPER_USER = "admin"


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node: where it listens and keeps its data."""

    node_id: int
    port: int
    controller_port: int
    home: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"


def java_binary() -> str:
    """``$JAVA_HOME/bin/java`` when set, else ``java`` on the PATH; Kafka 4
    needs Java 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        java = str(Path(home) / "bin" / "java")
    else:
        found = shutil.which("java")
        if found is None:
            raise FileNotFoundError("java not found; run `make setup` to install a JDK")
        java = found
    version = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', version)
    if match is None or int(match.group(1)) < MIN_JAVA:
        raise RuntimeError(
            f"{java} is not Java {MIN_JAVA}+ ({version.strip()[:60]!r}); "
            "set JAVA_HOME to a newer one or run `make setup`"
        )
    return java


def check_libs(libs: Path) -> None:
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise FileNotFoundError(
            f"Apache Kafka's jars are not in {libs}; run `make setup` (it assembles them "
            "with Maven from deploy/kafka/pom.xml) or set TICKETING_KAFKA_BOOTSTRAP"
        )


def plan_nodes(root: Path, count: int) -> list[KafkaNode]:
    ports = free_ports(2 * count)
    nodes = []
    for node_id in range(1, count + 1):
        home = root / f"kafka-{node_id}"
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        nodes.append(KafkaNode(node_id, ports[2 * node_id - 2], ports[2 * node_id - 1], home))
    return nodes


def server_properties(node: KafkaNode, nodes: list[KafkaNode], admin_password: str) -> str:
    """The node's configuration. Replication settings follow the cluster size
    (up to 3 copies, 2 of them in sync before an ``acks=all`` answer); timings
    are tuned for a small machine: quick failure detection in a cluster, and
    an idle broker that does little."""
    plain_login = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{SUPER_USER}" password="{admin_password}" '
        f'user_{SUPER_USER}="{admin_password}";'
    )
    replicas = min(3, len(nodes))
    in_sync = 2 if replicas >= 3 else 1
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
    settings = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"CLIENT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"CLIENT://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "CLIENT",
        "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "listener.name.client.sasl.enabled.mechanisms": f"{SCRAM},PLAIN",
        f"listener.name.client.{SCRAM.lower()}.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "listener.name.client.plain.sasl.jaas.config": plain_login,
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain_login,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{SUPER_USER}",
        "allow.everyone.if.no.acl.found": "false",
        "log.dirs": node.home / "data",
        "num.partitions": 6,
        "default.replication.factor": replicas,
        "min.insync.replicas": in_sync,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": 6,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": in_sync,
        "unclean.leader.election.enable": "false",
        "auto.create.topics.enable": "false",
        # Consumers join a new group at once instead of waiting 3 s for more.
        "group.initial.rebalance.delay.ms": 0,
        # Kafka's floor is 6 s; the fault suite runs consumers with 3 s so a
        # dead one's partitions move quickly.
        "group.min.session.timeout.ms": 1_000,
        # The controller appends a no-op record this often to show it is
        # alive; 500 ms by default, the bulk of an idle broker's work.
        "metadata.max.idle.interval.ms": 5_000,
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
        "background.threads": 2,
        "log.segment.bytes": 64 * 1024 * 1024,
    }
    if len(nodes) > 1:
        # A node that stops heartbeating is fenced (its leaderships moved) in
        # a few seconds rather than nine.
        settings["broker.session.timeout.ms"] = 4_000
        settings["broker.heartbeat.interval.ms"] = 1_000
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def log4j_properties(log_file: Path) -> str:
    return f"""status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = warn
"""


def jvm_options(heap: str) -> list[str]:
    """A fixed small heap, the serial collector and the C1 compiler only: the
    broker shares two cores with everything else. (With C2 as well, the
    spike, steady-rate and ceiling benchmarks came out no better on two
    cores, and an idle broker kept compiling for minutes.)"""
    return [
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
    ]


def prepare(
    nodes: list[KafkaNode], *, admin_password: str, libs: Path, logs: Path, heap: str
) -> list[Child]:
    """Writes each node's configuration, formats its storage with one
    cluster id, and returns the processes to start (not started yet)."""
    check_libs(libs)
    java = java_binary()
    classpath = str(libs / "*")
    cluster_id = _cluster_id()
    children = []
    for node in nodes:
        name = "kafka" if len(nodes) == 1 else f"kafka-{node.node_id}"
        # It holds the super user's password: this user's eyes only.
        write_private(node.properties, server_properties(node, nodes, admin_password))
        log4j = write_private(
            node.home / "log4j2.properties", log4j_properties(logs / f"{name}-server.log")
        )
        base = [java, *jvm_options(heap), f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
        run_once(
            [
                *base,
                STORAGE_TOOL,
                "format",
                "--cluster-id",
                cluster_id,
                "--config",
                str(node.properties),
                "--ignore-formatted",
            ],
            log=logs / f"{name}-format.log",
        )
        children.append(
            Child(
                name,
                [*base, BROKER_MAIN, str(node.properties)],
                logs / f"{name}.log",
                stop_signal=signal.SIGTERM,
                port=node.port,
            )
        )
    return children


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding
    (what ``kafka-storage.sh random-uuid`` prints). Like Kafka's own, never
    one starting with ``-``, which the formatter would take for an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
