"""Starts and stops the whole local stack.

PostgreSQL (own cluster), Redis and Apache Kafka (KRaft, one node or a
three-node cluster) are started unless ``TICKETING_POSTGRES_DSN`` / ``TICKETING_REDIS_URL`` /
``TICKETING_KAFKA_BOOTSTRAP`` point at existing servers; then the topics, the
services (2 gateways, 2 consumers, 1 reservation service, 1 notifier) and nginx
in front of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ticketing_common.config import Env, KafkaSettings
from ticketing_common.kafka import ensure_topics
from ticketing_common.storage.db import migrate_database

from . import kafka_broker, nginx
from .processes import Child, free_port, port_open, run_once, system_user, wait_until

# Where `make setup` assembles the broker's jars, relative to the working
# directory (the repository when run by make); TICKETING_KAFKA_LIBS overrides.
DEFAULT_KAFKA_LIBS = Path(".tools") / "kafka" / "libs"


@dataclass(frozen=True)
class StackConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 50051
    gateways: int = 2
    consumers: int = 2
    reservation_services: int = 1
    notifiers: int = 1
    postgres_dsn: str | None = None
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    # Extra TICKETING_* settings handed to every service.
    service_env: dict[str, str] = field(default_factory=dict)
    # Local Kafka: how many KRaft nodes (3 gives replication factor 3 with
    # min.insync.replicas=2), each node's JVM heap, and where the jars are.
    kafka_nodes: int = 1
    kafka_heap: str = "384m"
    kafka_libs: str = str(DEFAULT_KAFKA_LIBS)
    # Where to copy the processes' logs when the stack stops (kept nowhere if unset).
    keep_logs: str | None = None

    @classmethod
    def from_env(cls, env: Env | None = None) -> StackConfig:
        env = env or Env()
        return cls(
            listen_host=env.text("LISTEN_HOST", cls.listen_host),
            listen_port=env.integer("LISTEN_PORT", cls.listen_port, minimum=0),
            gateways=env.integer("GATEWAYS", cls.gateways, minimum=1),
            consumers=env.integer("CONSUMERS", cls.consumers, minimum=1),
            reservation_services=env.integer(
                "RESERVATION_SERVICES", cls.reservation_services, minimum=1
            ),
            notifiers=env.integer("NOTIFIERS", cls.notifiers, minimum=1),
            postgres_dsn=env.raw("POSTGRES_DSN"),
            redis_url=env.raw("REDIS_URL"),
            kafka_bootstrap=env.raw("KAFKA_BOOTSTRAP"),
            kafka_nodes=env.integer("KAFKA_NODES", cls.kafka_nodes, minimum=1),
            kafka_heap=env.text("KAFKA_HEAP", cls.kafka_heap),
            kafka_libs=env.text("KAFKA_LIBS", cls.kafka_libs),
            keep_logs=env.raw("STACK_KEEP_LOGS"),
        )


def _find_binary(name: str, *candidates: str) -> str:
    for pattern in candidates:
        for path in sorted(glob.glob(pattern), reverse=True):
            if os.access(path, os.X_OK):
                return path
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError(f"{name} not found; run `make setup` to install it")
    return found


def _pg_bin(name: str) -> str:
    return _find_binary(name, f"/usr/lib/postgresql/*/bin/{name}")


def _open_file_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 65_536 if hard == resource.RLIM_INFINITY else min(hard, 65_536)


def _wait_listening(child: Child, timeout_s: float) -> None:
    port = child.port or 0
    wait_until(lambda: port_open(port), timeout_s=timeout_s, what=child.name, alive=child.alive)


def _healthy(address: str) -> bool:
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.tmp = Path(tempfile.mkdtemp(prefix="ticketing-stack-"))
        self.tmp.chmod(0o755)
        self.logs = self.tmp / "logs"
        self.logs.mkdir()
        self.children: list[Child] = []
        self.brokers: list[Child] = []
        self.services: dict[str, list[Child]] = {}
        self.addresses: dict[str, list[str]] = {}
        self.postgres_dsn = ""
        self.redis_url = ""
        self.kafka_bootstrap = ""
        self.endpoint = ""
        self.kafka = KafkaSettings.from_env(Env())
        self._env_file: Path | None = None

    # -- start -----------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self.postgres_dsn = self.config.postgres_dsn or self._start_postgres()
            # Once, before any service starts (services only check the schema).
            asyncio.run(migrate_database(self.postgres_dsn))
            self.redis_url = self.config.redis_url or self._start_redis()
            self.kafka = KafkaSettings.from_env(Env())
            if self.config.kafka_bootstrap:
                self.kafka_bootstrap = self.config.kafka_bootstrap
            else:
                self.kafka_bootstrap = self._start_kafka()
                # Topics as replicated as the local cluster allows (3 copies
                # at most), or as set, but never more than it has nodes.
                nodes = self.config.kafka_nodes
                wanted = self.kafka.replication_factor
                if Env().raw("TOPIC_REPLICATION") is None:
                    wanted = 3
                self.kafka = dataclasses.replace(self.kafka, replication_factor=min(wanted, nodes))
            self.kafka = dataclasses.replace(self.kafka, bootstrap=self.kafka_bootstrap)
            asyncio.run(ensure_topics(self.kafka))
            self._start_services()
            self._start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_postgres(self) -> str:
        user = system_user("postgres")
        data = self.tmp / "postgres"
        sockets = self.tmp / "pgsock"
        for folder in (data, sockets):
            folder.mkdir(mode=0o700)
            if user is not None:
                os.chown(folder, user.pw_uid, user.pw_gid)
        run_once(
            [
                _pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            user=user,
            log=self.logs / "initdb.log",
        )
        port = free_port()
        child = Child(
            "postgres",
            [
                _pg_bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "fsync=on",
            ],
            self.logs / "postgres.log",
            user=user,
            stop_signal=signal.SIGINT,
            port=port,
        )
        self._launch(child)
        wait_until(lambda: port_open(port), timeout_s=30, what="postgres", alive=child.alive)
        createdb = [
            _pg_bin("createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "ticketing",
        ]
        deadline = time.monotonic() + 30
        while True:
            try:
                run_once(createdb, log=self.logs / "createdb.log")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        return f"postgresql://postgres@127.0.0.1:{port}/ticketing"

    def _start_redis(self) -> str:
        port = free_port()
        child = Child(
            "redis",
            [
                _find_binary("redis-server"),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            self.logs / "redis.log",
        )
        child.port = port
        self._launch(child)
        wait_until(lambda: port_open(port), timeout_s=20, what="redis", alive=child.alive)
        return f"redis://127.0.0.1:{port}/0"

    def _start_kafka(self) -> str:
        nodes = kafka_broker.plan_nodes(self.tmp, self.config.kafka_nodes)
        self.brokers = kafka_broker.prepare(
            nodes,
            libs=Path(self.config.kafka_libs).resolve(),
            logs=self.logs,
            heap=self.config.kafka_heap,
        )
        for child in self.brokers:
            self._launch(child)
        for child in self.brokers:
            _wait_listening(child, timeout_s=60)
        # ensure_topics (next) waits until every node has registered.
        return ",".join(node.address for node in nodes)

    def _service_env(self, name: str, index: int, port: int) -> dict[str, str]:
        # Every TICKETING_* setting of the caller reaches the services; only
        # what the launcher owns (address, identity, connections) is replaced.
        env = {**os.environ, **self.config.service_env}
        env.update(
            {
                "TICKETING_HOST": "127.0.0.1",
                "TICKETING_PORT": str(port),
                "TICKETING_INSTANCE_ID": f"{name}-{index}",
                "TICKETING_POSTGRES_DSN": self.postgres_dsn,
                "TICKETING_REDIS_URL": self.redis_url,
                "TICKETING_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "TICKETING_TOPIC_REPLICATION": str(self.kafka.replication_factor),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start_service(self, name: str) -> Child:
        """Starts one more instance of ``name``; ``wait_healthy`` waits for it."""
        index = len(self.services.get(name, []))
        port = free_port()
        child = Child(
            f"{name}-{index}",
            [sys.executable, "-m", name],
            self.logs / f"{name}-{index}.log",
            env=self._service_env(name, index, port),
            port=port,
            health_address=f"127.0.0.1:{port}",
        )
        self._launch(child)
        self.services.setdefault(name, []).append(child)
        self.addresses.setdefault(name, []).append(f"127.0.0.1:{port}")
        return child

    def _start_services(self) -> None:
        counts = {
            "reservation_service": self.config.reservation_services,
            "consumer_service": self.config.consumers,
            "notifier_service": self.config.notifiers,
            "gateway": self.config.gateways,
        }
        for name, count in counts.items():
            for _ in range(count):
                self.start_service(name)
        for name, children in self.services.items():
            for child, address in zip(children, self.addresses[name], strict=True):
                self.wait_healthy(child, address)

    def wait_healthy(self, child: Child, address: str, timeout_s: float = 60) -> None:
        try:
            wait_until(
                lambda: _healthy(address), timeout_s=timeout_s, what=child.name, alive=child.alive
            )
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; last log lines:\n{child.tail()}") from None

    def _start_nginx(self) -> None:
        prefix = self.tmp / "nginx"
        prefix.mkdir()
        port = self.config.listen_port or free_port()
        listen = f"{self.config.listen_host}:{port}"
        backends = {
            name: self.addresses[name]
            for name in ("gateway", "reservation_service", "notifier_service")
        }
        conf = prefix / "nginx.conf"
        conf.write_text(
            nginx.render(
                listen=listen,
                backends=backends,
                prefix=prefix,
                error_log=self.logs / "nginx-error.log",
                open_files=_open_file_limit(),
            )
        )
        binary = _find_binary("nginx", "/usr/sbin/nginx")
        run_once(
            [binary, "-t", "-q", "-p", str(prefix), "-c", str(conf)], log=self.logs / "nginx.log"
        )
        child = Child(
            "nginx",
            [binary, "-p", str(prefix), "-c", str(conf)],
            self.logs / "nginx.log",
            stop_signal=signal.SIGQUIT,
        )
        self._launch(child)
        wait_until(
            lambda: port_open(port, self.config.listen_host),
            timeout_s=20,
            what="nginx",
            alive=child.alive,
        )
        self.endpoint = listen

    def find(self, name: str) -> Child:
        """The running child called ``name`` (``postgres``, ``redis``, ``kafka``
        or ``kafka-1``.. in a cluster, ``nginx``, ``gateway-0``, ...)."""
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(name)

    def restart(self, child: Child, *, down_s: float = 0.0, timeout_s: float = 60) -> None:
        """Stops ``child`` as it would stop at shutdown, waits ``down_s``, starts
        it again with the same command line (same port, same data), and waits
        until it serves again. Redis comes back empty: it keeps nothing on disk;
        a Kafka node comes back with its log."""
        child.stop()
        time.sleep(down_s)
        child.start()
        if child in self.brokers:
            # Same data directory: it recovers its log and rejoins; ready
            # once every partition has a leader again.
            _wait_listening(child, timeout_s)
            asyncio.run(ensure_topics(self.kafka, retry_for_s=timeout_s))
        elif child.health_address is not None:
            self.wait_healthy(child, child.health_address, timeout_s)
        elif child.port is not None:
            _wait_listening(child, timeout_s)

    def connection_env(self) -> dict[str, str]:
        """The settings a client of this stack needs (also written to
        ``env_file`` while the stack runs, for ``make ledger`` / ``make dlq``)."""
        return {
            "TICKETING_ENDPOINT": self.endpoint,
            "TICKETING_POSTGRES_DSN": self.postgres_dsn,
            "TICKETING_REDIS_URL": self.redis_url,
            "TICKETING_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "TICKETING_REQUESTS_TOPIC": self.kafka.requests_topic,
            "TICKETING_RESULTS_TOPIC": self.kafka.results_topic,
            "TICKETING_DEAD_LETTER_TOPIC": self.kafka.dead_letter_topic,
            "TICKETING_CONSUMER_GROUP": self.kafka.consumer_group,
            # For CPU accounting (make demo): the stack's processes right now.
            "TICKETING_STACK_PIDS": ",".join(str(c.pid) for c in self.children if c.alive()),
        }

    def write_env_file(self, path: Path) -> None:
        path.write_text("".join(f"{k}={v}\n" for k, v in self.connection_env().items()))
        self._env_file = path

    def _launch(self, child: Child) -> None:
        child.start()
        self.children.append(child)

    # -- stop ------------------------------------------------------------

    def stop(self) -> None:
        """Stops everything in reverse start order and removes the temporary
        directory. Services drain on SIGTERM (consumers commit offsets)."""
        for child in reversed(self.children):
            if child in self.brokers:
                # Kafka nodes shut down together: one by one, the last of a
                # cluster would wait for a controller quorum that is gone.
                for broker in self.brokers:
                    broker.request_stop()
            child.stop()
        self.children.clear()
        if self._env_file is not None:
            self._env_file.unlink(missing_ok=True)
        if self.config.keep_logs and self.logs.exists():
            shutil.copytree(self.logs, self.config.keep_logs, dirs_exist_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
