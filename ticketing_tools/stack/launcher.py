"""Starts and stops the whole local stack.

PostgreSQL (own cluster), Redis and Apache Kafka (KRaft, one node or a
three-node cluster) are started unless ``TICKETING_POSTGRES_DSN`` /
``TICKETING_REDIS_URL`` / ``TICKETING_KAFKA_BOOTSTRAP`` point at existing
servers; then the topics, the services (2 gateways, 2 consumers, 1
reservation service, 1 notifier, 1 payment service) and nginx in front of
them. With the Stripe provider, a stripe-mock of its own as well, unless
``TICKETING_STRIPE_API_BASE`` names a Stripe account (``payment_provider``).
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import Field, SecretStr, field_validator

from gateway.settings import GatewaySettings
from reservation_service.settings import ReservationSettings
from ticketing_common.auth import CUSTOMER
from ticketing_common.config import (
    AuthSettings,
    KafkaSettings,
    PostgresClient,
    RedisClient,
    ReservationIdSecret,
    ServerSettings,
    Settings,
    settings_config,
    variable,
)
from ticketing_common.kafka import ensure_topics
from ticketing_common.record_keys import RecordKeys
from ticketing_common.storage.db import migrate_database

from .. import db_access, kafka_access
from ..private import write_private
from ..tokens import AUDIENCE, ISSUER, SigningKey
from . import kafka_broker, nginx, payment_provider, tls
from .processes import Child, free_port, port_open, run_once, system_user, wait_until

# The id of a stack's record key (its secret is generated per stack).
STACK_RECORD_KEY_ID = "stack"

# Settings the local stack gives its services unless the caller sets them: its
# load (the seed rush, the benchmarks, the demo) comes from thousands of
# subjects on one loopback address, or from one subject, so the gateways'
# rate limits are off here; deploy/ keeps them on.
LOCAL_DEFAULTS = {
    variable(GatewaySettings, "rate_per_subject"): "0",
    variable(GatewaySettings, "rate_per_address"): "0",
}


class StackSigningKey(Settings):
    """The key a local stack's tokens are signed with."""

    model_config = settings_config("STACK")

    signing_key_file: str | None = Field(
        None,
        description="ES256 private key (PEM) the stack's tokens are signed with: unset, each "
        "stack generates its own; `make run` writes the one in use to the env file, where "
        "`ticketing-admin token` finds it",
    )


class StackConfig(PostgresClient, RedisClient, StackSigningKey):
    """The launcher's settings (``TICKETING_STACK_*``). The connection
    settings it shares with the services name servers to use instead of
    starting its own when they are set."""

    model_config = settings_config("STACK")

    kafka: KafkaSettings = KafkaSettings.with_defaults()
    listen_host: str = Field("127.0.0.1", description="address nginx listens on")
    listen_port: int = Field(
        50051,
        ge=0,
        le=65_535,
        description="port nginx listens on; `0` picks a free port (the tests always do)",
    )
    gateways: int = Field(2, ge=1, description="gateway processes")
    consumers: int = Field(2, ge=1, description="consumer processes")
    reservation_services: int = Field(1, ge=1, description="reservation service processes")
    notifiers: int = Field(1, ge=1, description="notifier processes")
    payment_services: int = Field(1, ge=1, description="payment service processes")
    kafka_nodes: int = Field(
        1,
        ge=1,
        description="local Kafka: KRaft nodes (each a controller and a broker); 3 gives "
        "replication factor 3 and `min.insync.replicas=2`",
    )
    kafka_heap: str = Field("384m", description="local Kafka: JVM heap of each node")
    # Relative to the working directory: the repository when run by make.
    kafka_libs: str = Field(
        str(Path(".tools") / "kafka" / "libs"),
        description="local Kafka: the jars `make setup` assembled",
    )
    keep_logs: str | None = Field(
        None, description="directory to copy all process logs to when the stack stops"
    )
    tls: bool = Field(
        False,
        description="TLS between clients and nginx, and mutual TLS between nginx and the "
        "services, with a CA generated for the stack (`make run TLS=1`); the CA certificate "
        "is written to the env file for clients",
    )
    payment_provider: Literal["local", "stripe"] = Field(
        "local",
        description="who the payment services take payments with: `local`, the stand-in "
        "that moves no money, or `stripe`, Stripe's API: a stripe-mock of the stack's own "
        "(built with Go, as `make stripe-mock` does), or the test-mode account "
        "`TICKETING_STRIPE_API_BASE` names, with `TICKETING_STRIPE_API_KEY` and "
        "`TICKETING_STRIPE_WEBHOOK_SECRET`",
    )
    webhook_port: int = Field(
        0,
        ge=0,
        le=65_535,
        description="port nginx takes Stripe's webhooks on (`POST /stripe/webhook`, at "
        "`TICKETING_STACK_LISTEN_HOST`, HTTPS with `TICKETING_STACK_TLS`) for the payment "
        "services; `0` picks a free port, which `make run` prints and writes to the env file: "
        "set one to register a URL that stays",
    )


class RunningStack(PostgresClient, RedisClient, StackSigningKey):
    """Where a running stack is: ``make run`` writes these settings to
    ``.ticketing-stack.env`` for the tools (``make demo``, ``make ledger``,
    ``make dlq``)."""

    model_config = settings_config("STACK")

    kafka: KafkaSettings = KafkaSettings.with_defaults()
    reservation_id_secret: str | None = Field(
        None,
        repr=False,
        description="the running stack's reservation-id secret, written by `make run` for "
        "`make demo`, which appends records straight to the queue",
    )
    endpoint: str | None = Field(
        None,
        description="the running stack's nginx, written by `make run`; unset, `make demo` "
        "starts a stack of its own",
    )
    tls_ca_file: str | None = Field(
        None,
        description="the CA certificate a TLS stack's nginx is checked against, written by "
        "`make run TLS=1`",
    )
    webhook_endpoint: str | None = Field(
        None,
        description="the running stack's listener for Stripe's webhooks (`host:port`; path "
        "`/stripe/webhook`), written by `make run`",
    )
    stripe_api_base: str | None = Field(
        None,
        description="the Stripe API the running stack's payment services use (its own "
        "stripe-mock, or a test-mode account), written by `make run` with the Stripe provider",
    )
    stripe_api_key: str | None = Field(
        None,
        repr=False,
        description="the key of `TICKETING_STACK_STRIPE_API_BASE`, written by `make run` with "
        "the Stripe provider",
    )
    stripe_webhook_secret: str | None = Field(
        None,
        repr=False,
        description="the secret the running stack's payment services check webhook "
        "signatures with, written by `make run` with the Stripe provider, for tools that "
        "send it signed events",
    )
    pids: tuple[int, ...] = Field(
        (),
        description="the running stack's process ids, comma-separated, written by `make run` "
        "for `make demo`'s CPU accounting",
    )

    @field_validator("pids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return tuple(p for p in value.split(",") if p) if isinstance(value, str) else value


# The Kafka user of each service that talks to Kafka (see kafka_access).
KAFKA_USERS = {
    "gateway": "gateway",
    "consumer_service": "consumer",
    "notifier_service": "notifier",
    "payment_service": "payment",
}

# The local PostgreSQL's roles besides the superuser: the schema's owner, a
# role that reads and writes every row (the tests' and tools' own
# connections), and one role per service with only its grants (db_access).
PG_ROLES = ("ticketing_owner", "ticketing_app", *db_access.SERVICES)
# The PostgreSQL role each service runs as.
PG_SERVICE_ROLES = {module: role for role, module in db_access.MODULES.items()}


async def _create_database(superuser_dsn: str, passwords: Mapping[str, str]) -> None:
    """The roles and the database of a fresh local cluster (retried while the
    server is still starting)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = await asyncpg.connect(superuser_dsn, timeout=5)
            break
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.PostgresConnectionError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
    try:
        for role in PG_ROLES:
            # A role name and a generated password: no value from outside.
            await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{passwords[role]}'")
        await conn.execute("CREATE DATABASE ticketing OWNER ticketing_owner")
    finally:
        await conn.close()
    owner_dsn = superuser_dsn.replace(
        f"postgres:{passwords['postgres']}@", f"ticketing_owner:{passwords['ticketing_owner']}@"
    ).rsplit("/", 1)[0]
    owner = await asyncpg.connect(f"{owner_dsn}/ticketing", timeout=5)
    try:
        # Every table the owner creates (now, by migrations) is ticketing_app's
        # to read and write, not to alter or drop; the services' own roles
        # get their grants after the migrations (``_grant_database_access``).
        await owner.execute(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            "GRANT SELECT, INSERT, UPDATE ON TABLES TO ticketing_app"
        )
    finally:
        await owner.close()


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


def _healthy(address: str, credentials: grpc.ChannelCredentials | None = None) -> bool:
    try:
        with (
            grpc.insecure_channel(address)
            if credentials is None
            else grpc.secure_channel(address, credentials)
        ) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


class LocalStack:
    """``service_env``: extra ``TICKETING_*`` settings handed to every
    service. ``own_servers``: start PostgreSQL, Redis and Kafka even when the
    settings name existing ones (the fault tests kill and restart them)."""

    def __init__(
        self,
        config: StackConfig | None = None,
        *,
        service_env: Mapping[str, str] | None = None,
        own_servers: bool = False,
    ) -> None:
        self.config = config or StackConfig()
        self.service_env = dict(service_env or {})
        # The connection settings given explicitly, by the environment or the
        # caller, name servers to use; the others are started.
        self._given = set() if own_servers else self.config.model_fields_set
        self._given_kafka = set() if own_servers else self.config.kafka.model_fields_set
        # Everything the stack writes is this user's only (0700 folders,
        # 0600 files), except what a server that runs as its own user needs:
        # that gets a 0700 folder of its own owned by that user.
        self.tmp = Path(tempfile.mkdtemp(prefix="ticketing-stack-"))
        self.private_dirs: list[Path] = []
        self.logs = self.tmp / "logs"
        self.logs.mkdir(mode=0o700)
        self.children: list[Child] = []
        self.brokers: list[Child] = []
        self.services: dict[str, list[Child]] = {}
        self.addresses: dict[str, list[str]] = {}
        # How many of each service were ever started (names stay unique).
        self._started: dict[str, int] = {}
        # Who may call: the stack's own signing key (public half as a JWKS for
        # the services) and the secret reservation ids are derived with, in
        # a folder only this user can read.
        self.secrets = self.tmp / "secrets"
        self.secrets.mkdir(mode=0o700)
        self.signing_key = (
            SigningKey.load(Path(self.config.signing_key_file))
            if self.config.signing_key_file
            else SigningKey.generate()
        )
        self.signing_key_file, self.jwks_file = self.signing_key.write(self.secrets)
        self.tls: tls.StackTls | None = None
        self.reservation_id_secret = secrets.token_hex(32)
        # One for every reservation service: nginx sends a next page to any.
        self.page_token_secret = secrets.token_hex(32)
        self.postgres_dsn = ""
        # Who may do what in PostgreSQL: the superuser (tests that restart or
        # reconfigure the server), the schema owner (migrations) and
        # ``postgres_dsn``, which reads and writes every row (tests, tools);
        # with its own server, each service its own role (``service_dsns``).
        # One DSN for all when it is given.
        self.admin_dsn = ""
        self.owner_dsn = ""
        self.service_dsns: dict[str, str] = {}
        self.redis_url = ""
        self.kafka_bootstrap = ""
        self.endpoint = ""
        self.kafka = self.config.kafka
        # With its own Kafka: each service's (user, password); the stack's
        # own clients (``kafka``) connect as the super user.
        self.kafka_credentials: dict[str, tuple[str, str]] = {}
        # The super user's credentials for Kafka's own scripts (--command-config).
        self.kafka_admin_properties: Path | None = None
        # Who the payment services take payments with; with Stripe, its API
        # (``stripe_mock`` when the stack runs its own).
        self.payment_provider = self.config.payment_provider
        self.stripe: payment_provider.StripeApi | None = None
        self.stripe_mock: Child | None = None
        # nginx's listener for Stripe's webhooks ("host:port"), and the
        # payment services' webhook servers behind it (by instance name).
        self.webhook_endpoint = ""
        self._webhook_backends: dict[str, str] = {}
        self._env_file: Path | None = None

    @property
    def stripe_api_base(self) -> str | None:
        return self.stripe.api_base if self.stripe else None

    @property
    def stripe_api_key(self) -> str | None:
        return self.stripe.api_key if self.stripe else None

    @property
    def stripe_webhook_secret(self) -> str | None:
        return self.stripe.webhook_secret if self.stripe else None

    @property
    def webhook_backends(self) -> list[str]:
        """The running payment services' webhook servers (``host:port``)."""
        return list(self._webhook_backends.values())

    # -- start -----------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self.postgres_dsn = (
                self.config.postgres_dsn
                if "postgres_dsn" in self._given
                else self._start_postgres()
            )
            self.admin_dsn = self.admin_dsn or self.postgres_dsn
            self.owner_dsn = self.owner_dsn or self.postgres_dsn
            # Once, before any service starts (services only check the schema).
            asyncio.run(migrate_database(self.owner_dsn))
            if self.service_dsns:
                asyncio.run(self._grant_database_access())
            self.redis_url = (
                self.config.redis_url if "redis_url" in self._given else self._start_redis()
            )
            if "bootstrap" in self._given_kafka:
                self.kafka_bootstrap = self.config.kafka.bootstrap
            else:
                self.kafka_bootstrap = self._start_kafka()
                # Topics as replicated as the local cluster allows (3 copies
                # at most), or as set, but never more than it has nodes.
                wanted = self.kafka.replication_factor
                if "replication_factor" not in self.config.kafka.model_fields_set:
                    wanted = 3
                self.kafka = self.kafka.model_copy(
                    update={"replication_factor": min(wanted, self.config.kafka_nodes)}
                )
            self.kafka = self.kafka.model_copy(update={"bootstrap": self.kafka_bootstrap})
            if self.kafka_credentials:
                self._create_kafka_users()
            asyncio.run(ensure_topics(self.kafka))
            if self.kafka_credentials:
                self._grant_kafka_access()
            if self.config.tls:
                self.tls = tls.generate(
                    self.secrets / "tls",
                    edge_hosts=[self.config.listen_host],
                    service_names=[*dict.fromkeys(nginx.ROUTES.values()), "consumer_service"],
                )
            self._start_payment_provider()
            self._start_services()
            self._start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_postgres(self) -> str:
        """A cluster of its own with password (scram) authentication only, a
        database owned by ``ticketing_owner`` (migrations run as it) and a
        ``ticketing_app`` role for the services, which may read and write
        rows but not change the schema. Returns the services' DSN."""
        user = system_user("postgres")
        home = self._private_dir("postgres", user)
        data = home / "data"
        sockets = home / "sockets"
        init = home / "init"
        for folder in (data, sockets, init):
            folder.mkdir(mode=0o700)
            if user is not None:
                os.chown(folder, user.pw_uid, user.pw_gid)
        passwords = {role: secrets.token_urlsafe(24) for role in ("postgres", *PG_ROLES)}
        pwfile = init / "superuser"
        write_private(pwfile, passwords["postgres"] + "\n")
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        run_once(
            [
                _pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "scram-sha-256",
                "--pwfile",
                str(pwfile),
                "-E",
                "UTF8",
                "--no-sync",
            ],
            user=user,
            log=self.logs / "initdb.log",
        )
        pwfile.unlink()
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

        def dsn(role: str, database: str) -> str:
            return f"postgresql://{role}:{passwords[role]}@127.0.0.1:{port}/{database}"

        self.admin_dsn = dsn("postgres", "ticketing")
        self.owner_dsn = dsn("ticketing_owner", "ticketing")
        self.service_dsns = {
            module: dsn(role, "ticketing") for module, role in PG_SERVICE_ROLES.items()
        }
        asyncio.run(_create_database(dsn("postgres", "postgres"), passwords))
        return dsn("ticketing_app", "ticketing")

    async def _grant_database_access(self) -> None:
        """Each service's role gets what its queries need (``db_access``),
        ReserveSync's too: the tests and the demo switch it on."""
        owner = await asyncpg.connect(self.owner_dsn, timeout=10)
        try:
            await db_access.apply_grants(owner, reserve_sync=True)
        finally:
            await owner.close()

    def _start_redis(self) -> str:
        port = free_port()
        # A password of its own, in a file only this user reads (not on the
        # command line, where any local user could see it).
        password = secrets.token_urlsafe(24)
        conf = self.secrets / "redis.conf"
        write_private(conf, f"requirepass {password}\n")
        child = Child(
            "redis",
            [
                _find_binary("redis-server"),
                str(conf),
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
        return f"redis://:{password}@127.0.0.1:{port}/0"

    def _start_kafka(self) -> str:
        """Nodes that accept authenticated clients only; the stack's own
        clients from here on are the super user."""
        admin_password = secrets.token_urlsafe(24)
        self.kafka = self.kafka.model_copy(
            update={
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": kafka_broker.SUPER_USER,
                "sasl_password": SecretStr(admin_password),
            }
        )
        self.kafka_credentials = {
            service: (user, secrets.token_urlsafe(24)) for service, user in KAFKA_USERS.items()
        }
        nodes = kafka_broker.plan_nodes(self.tmp, self.config.kafka_nodes)
        self.brokers = kafka_broker.prepare(
            nodes,
            admin_password=admin_password,
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

    def _create_kafka_users(self) -> None:
        """Each service's SCRAM user, and one for the super user, which the
        stack's own clients use from then on (PLAIN, the bootstrap
        mechanism, sends the password itself)."""
        password = self.kafka.sasl_password
        assert password is not None
        kafka_access.create_users(
            self.kafka,
            {
                kafka_broker.SUPER_USER: password.get_secret_value(),
                **dict(self.kafka_credentials.values()),
            },
            retry_for_s=60,
        )
        self.kafka = self.kafka.model_copy(update={"sasl_mechanism": kafka_broker.SCRAM})
        self.kafka_admin_properties = write_private(
            self.secrets / "kafka-admin.properties", kafka_access.java_client_properties(self.kafka)
        )

    def _grant_kafka_access(self) -> None:
        """The ACLs that let each service's user do its part only."""
        kafka_access.apply_acls(
            self.kafka,
            {role: self.kafka_credentials[service][0] for service, role in KAFKA_USERS.items()},
        )

    def _start_payment_provider(self) -> None:
        """With the Stripe provider: the account the caller names, or a
        stripe-mock of the stack's own."""
        if self.payment_provider != "stripe":
            return
        # As the services would read it: the caller's settings over the environment.
        self.stripe = payment_provider.given_account({**os.environ, **self.service_env})
        if self.stripe is not None:
            return
        # Built under the working directory, as kafka_libs is found there:
        # the repository when run by make.
        child, self.stripe = payment_provider.stripe_mock_child(Path.cwd(), self.logs)
        self._launch(child)
        _wait_listening(child, timeout_s=30)
        self.stripe_mock = child

    def _service_env(self, name: str, index: int, port: int) -> dict[str, str]:
        # Every TICKETING_* setting of the caller reaches the services; only
        # what the launcher owns (address, identity, connections) is replaced.
        env = {**LOCAL_DEFAULTS, **os.environ, **self.service_env}
        env.update(
            {
                variable(ServerSettings, "host"): "127.0.0.1",
                variable(ServerSettings, "port"): str(port),
                variable(ServerSettings, "instance_id"): f"{name}-{index}",
                variable(PostgresClient, "postgres_dsn"): self.service_dsns.get(
                    name, self.postgres_dsn
                ),
                variable(RedisClient, "redis_url"): self.redis_url,
                variable(KafkaSettings, "bootstrap"): self.kafka_bootstrap,
                variable(KafkaSettings, "replication_factor"): str(self.kafka.replication_factor),
                variable(AuthSettings, "jwks_file"): str(self.jwks_file),
                variable(AuthSettings, "issuer"): ISSUER,
                variable(AuthSettings, "audience"): AUDIENCE,
                variable(ReservationIdSecret, "reservation_id_secret"): self.reservation_id_secret,
                variable(ReservationIdSecret, "reservation_key_id"): STACK_RECORD_KEY_ID,
                variable(ReservationSettings, "page_token_secret"): self.page_token_secret,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.tls is not None:
            env.update(
                {
                    variable(ServerSettings, "tls_cert_file"): str(self.tls.services.cert),
                    variable(ServerSettings, "tls_key_file"): str(self.tls.services.key),
                    variable(ServerSettings, "tls_client_ca_file"): str(self.tls.ca),
                }
            )
        if name == "payment_service":
            env.update(
                payment_provider.service_env(
                    self.payment_provider, tls=self.tls, stripe=self.stripe
                )
            )
        if name in self.kafka_credentials:
            user, password = self.kafka_credentials[name]
            env.update(
                {
                    variable(KafkaSettings, "security_protocol"): "SASL_PLAINTEXT",
                    variable(KafkaSettings, "sasl_mechanism"): kafka_broker.SCRAM,
                    variable(KafkaSettings, "sasl_username"): user,
                    variable(KafkaSettings, "sasl_password"): password,
                }
            )
        return env

    def start_service(self, name: str, settings: Mapping[str, str] | None = None) -> Child:
        """Starts one more instance of ``name``, with extra ``settings`` of its
        own if given; ``wait_healthy`` waits for it."""
        index = self._started[name] = self._started.get(name, 0) + 1
        index -= 1
        port, metrics_port = free_port(), free_port()
        env = self._service_env(name, index, port)
        env[variable(ServerSettings, "metrics_port")] = str(metrics_port)
        env = {**env, **(settings or {})}
        child = Child(
            f"{name}-{index}",
            [sys.executable, "-m", name],
            self.logs / f"{name}-{index}.log",
            env=env,
            port=port,
            health_address=f"127.0.0.1:{port}",
            metrics_port=metrics_port,
        )
        self._launch(child)
        self.services.setdefault(name, []).append(child)
        self.addresses.setdefault(name, []).append(f"127.0.0.1:{port}")
        webhooks = payment_provider.webhook_address(env) if name == "payment_service" else None
        if webhooks is not None:
            self._webhook_backends[child.name] = webhooks
        return child

    def stop_service(self, child: Child, timeout_s: float = 30) -> None:
        """Stops one instance ``start_service`` started (it drains on SIGTERM)
        and forgets it: the stack's addresses list only what runs."""
        child.stop(timeout_s)
        for name, children in self.services.items():
            if child in children:
                children.remove(child)
                self.addresses[name].remove(child.health_address or "")
        self._webhook_backends.pop(child.name, None)
        self.children.remove(child)

    def _start_services(self) -> None:
        counts = {
            "reservation_service": self.config.reservation_services,
            "consumer_service": self.config.consumers,
            "notifier_service": self.config.notifiers,
            "payment_service": self.config.payment_services,
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
                lambda: _healthy(address, self.service_credentials()),
                timeout_s=timeout_s,
                what=child.name,
                alive=child.alive,
            )
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; last log lines:\n{child.tail()}") from None

    def service_credentials(self) -> grpc.ChannelCredentials | None:
        """What a client reaching a service directly (not through nginx)
        needs: with TLS, nginx's client certificate; else nothing."""
        if self.tls is None:
            return None
        key, chain = self.tls.read(self.tls.proxy)
        return grpc.ssl_channel_credentials(
            root_certificates=self.tls.ca.read_bytes(), private_key=key, certificate_chain=chain
        )

    def client_credentials(self) -> grpc.ChannelCredentials | None:
        """What a client of nginx needs: with TLS, the stack's CA; else nothing."""
        if self.tls is None:
            return None
        return grpc.ssl_channel_credentials(root_certificates=self.tls.ca.read_bytes())

    def _private_dir(self, name: str, owner: pwd.struct_passwd | None) -> Path:
        """A 0700 folder for a server that runs as ``owner`` (None: as us,
        inside the stack's folder)."""
        if owner is None:
            folder = self.tmp / name
            folder.mkdir(mode=0o700)
            return folder
        folder = Path(tempfile.mkdtemp(prefix=f"ticketing-stack-{name}-"))
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        self.private_dirs.append(folder)
        return folder

    def _start_nginx(self) -> None:
        # Run as root, nginx's master starts its workers as "nobody"; they
        # write request bodies under the prefix.
        worker = system_user("nobody")
        prefix = self._private_dir("nginx", worker)
        port = self.config.listen_port or free_port()
        listen = f"{self.config.listen_host}:{port}"
        webhook_port = self.config.webhook_port or free_port()
        webhook_listen = f"{self.config.listen_host}:{webhook_port}"
        backends = {name: self.addresses[name] for name in dict.fromkeys(nginx.ROUTES.values())}
        conf = prefix / "nginx.conf"
        write_private(
            conf,
            nginx.render(
                listen=listen,
                backends=backends,
                prefix=prefix,
                error_log=self.logs / "nginx-error.log",
                open_files=_open_file_limit(),
                tls=self.tls,
                user=worker,
                webhook_listen=webhook_listen,
                webhook_backends=self.webhook_backends,
            ),
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
            lambda: all(port_open(p, self.config.listen_host) for p in (port, webhook_port)),
            timeout_s=20,
            what="nginx",
            alive=child.alive,
        )
        self.endpoint = listen
        self.webhook_endpoint = webhook_listen

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
        """The settings a client of this stack needs, as ``RunningStack``
        reads them (also written to ``env_file`` while the stack runs, for
        ``make demo``, ``make ledger`` and ``make dlq``)."""
        kafka = (
            "bootstrap",
            "requests_topic",
            "results_topic",
            "dead_letter_topic",
            "consumer_group",
            "security_protocol",
            "sasl_mechanism",
        )
        credentials = {}
        if self.kafka.sasl_username and self.kafka.sasl_password:
            credentials = {
                variable(KafkaSettings, "sasl_username"): self.kafka.sasl_username,
                variable(KafkaSettings, "sasl_password"): (
                    self.kafka.sasl_password.get_secret_value()
                ),
            }
        stripe = {}
        if self.stripe is not None:
            stripe = {
                variable(RunningStack, "stripe_api_base"): self.stripe.api_base,
                variable(RunningStack, "stripe_api_key"): self.stripe.api_key,
                variable(RunningStack, "stripe_webhook_secret"): self.stripe.webhook_secret,
            }
        return {
            variable(RunningStack, "endpoint"): self.endpoint,
            **(
                {variable(RunningStack, "tls_ca_file"): str(self.tls.ca)}
                if self.tls is not None
                else {}
            ),
            variable(RunningStack, "webhook_endpoint"): self.webhook_endpoint,
            **stripe,
            variable(RunningStack, "postgres_dsn"): self.postgres_dsn,
            variable(RunningStack, "redis_url"): self.redis_url,
            variable(RunningStack, "signing_key_file"): str(self.signing_key_file),
            variable(RunningStack, "reservation_id_secret"): self.reservation_id_secret,
            **{variable(KafkaSettings, name): str(getattr(self.kafka, name)) for name in kafka},
            **credentials,
            # The stack's processes right now.
            variable(RunningStack, "pids"): ",".join(
                str(c.pid) for c in self.children if c.alive()
            ),
        }

    def token(
        self, subject: str, *, roles: Iterable[str] = (CUSTOMER,), ttl_s: float = 3600.0
    ) -> str:
        """A bearer token for ``subject`` that this stack's services accept."""
        return self.signing_key.mint(subject, roles=roles, ttl_s=ttl_s)

    @property
    def record_keys(self) -> RecordKeys:
        """The record key this stack's gateways sign with (and derive ids with)."""
        return RecordKeys.single(STACK_RECORD_KEY_ID, self.reservation_id_secret.encode())

    def reservation_id(self, subject: str, idempotency_key: str, event_id: str) -> str:
        """The id this stack's gateways give ``subject``'s request."""
        return self.record_keys.reservation_id(subject, idempotency_key, event_id)

    def write_env_file(self, path: Path) -> None:
        """Writes ``connection_env`` for the tools, readable by this user only
        (it names the signing key and holds the reservation-id secret)."""
        write_private(path, "".join(f"{k}={v}\n" for k, v in self.connection_env().items()))
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
        for folder in (self.tmp, *self.private_dirs):
            shutil.rmtree(folder, ignore_errors=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
