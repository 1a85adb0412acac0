"""Settings are data: each one declared once, read from the environment here.

A setting is a field of a frozen settings class (pydantic-settings): its type,
default, bounds and ``description`` are written once, on the field, and the
README's configuration tables and ``deploy/env.example`` are generated from
them (``make settings-doc``). This module is the only place that reads the
environment; composition roots build their settings object once
(``runtime.run``) and pass it down.

Variable names follow one rule: ``TICKETING_``, then the component of the
class that declares the setting, then the field's name, all upper case. The
component is empty for what every service shares (its gRPC server,
PostgreSQL, Redis: ``TICKETING_PORT``, ``TICKETING_POSTGRES_DSN``), ``KAFKA``
for the Kafka client settings (``TICKETING_KAFKA_BOOTSTRAP``), ``STRIPE`` for
the payment provider's (``TICKETING_STRIPE_API_KEY``), the service's
name for one service's own settings (``TICKETING_CONSUMER_MAX_BATCH``,
``TICKETING_GATEWAY_POOL_SIZE``) and ``STACK`` for the local stack launcher.
A class carries its component as ``env_prefix`` (``settings_config``); a
setting keeps the name of the class that declares it wherever that class is
mixed in or nested, so one setting has one name.

Groups of settings (``server``, ``kafka``) are nested settings classes whose
variables stay flat (``TICKETING_KAFKA_BOOTSTRAP``, not
``TICKETING_KAFKA__BOOTSTRAP``); a service gives a group its own defaults with
``with_defaults`` (each service's default port). An empty variable counts as
unset; variables no class declares are ignored, except the names used before
the rule, which stop the process with their new name (``RENAMED``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, cast
from urllib.parse import urlsplit, urlunsplit

import grpc
from aiokafka.helpers import create_ssl_context
from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .auth import VerifierConfig
from .jwks import check_url
from .record_keys import KEY_ID_PATTERN, RecordKeys

PREFIX = "TICKETING_"


class ConfigError(ValueError):
    """A setting cannot be read; the message names the variable."""


def settings_config(component: str = "") -> SettingsConfigDict:
    """The configuration of a settings class of ``component`` (see the rule above)."""
    return SettingsConfigDict(env_prefix=f"{PREFIX}{component}_" if component else PREFIX)


class Settings(BaseSettings):
    """Base of every settings class: frozen, bounds checked on defaults too,
    read from the environment by the naming rule only."""

    model_config = SettingsConfigDict(
        frozen=True,
        validate_default=True,
        extra="forbid",
        case_sensitive=True,
        env_prefix=PREFIX,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Values given to the constructor win over the environment; no
        # dotenv or secrets files: the environment is the one source.
        return (init_settings, _Environment(settings_cls))

    @classmethod
    def with_defaults(cls, **defaults: Any) -> Self:
        """This group as a field's default: ``defaults`` replace the declared
        defaults, and the environment still overrides both."""
        # The pydantic plugin types model_construct as returning the base class.
        return cast(Self, cls.model_construct(**defaults))


def group_of(field: FieldInfo) -> type[Settings] | None:
    """The settings class of a nested group field, else None."""
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, Settings):
        return annotation
    return None


def declaring_class(cls: type[Settings], name: str) -> type[Settings]:
    """The class that declares field ``name`` of ``cls`` (itself or a mixin)."""
    for klass in cls.__mro__:
        if issubclass(klass, Settings) and name in vars(klass).get("__annotations__", {}):
            return klass
    raise KeyError(f"{cls.__name__} has no setting {name!r}")


def variable(cls: type[Settings], name: str) -> str:
    """The environment variable of field ``name`` of ``cls``: named by the
    class that declares the field."""
    return f"{declaring_class(cls, name).model_config.get('env_prefix', PREFIX)}{name.upper()}"


def group_defaults(field: FieldInfo) -> dict[str, Any]:
    """What a group field's default (``with_defaults``) sets."""
    default = field.default
    if isinstance(default, Settings):
        return {name: getattr(default, name) for name in default.model_fields_set}
    return {}


def read_environment(cls: type[Settings], environ: Mapping[str, str]) -> dict[str, Any]:
    """The raw values ``environ`` gives ``cls``'s fields (groups as nested
    dicts); empty values are left out, as unset."""
    values: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        group = group_of(field)
        if group is not None:
            values[name] = group_defaults(field) | read_environment(group, environ)
        elif raw := environ.get(variable(cls, name)):
            values[name] = raw
    return values


# Names used before the naming rule; still set, they would be ignored without
# a word, so they stop the process instead.
RENAMED: Mapping[str, tuple[str, ...]] = {
    "TICKETING_REQUESTS_TOPIC": ("TICKETING_KAFKA_REQUESTS_TOPIC",),
    "TICKETING_RESULTS_TOPIC": ("TICKETING_KAFKA_RESULTS_TOPIC",),
    "TICKETING_DEAD_LETTER_TOPIC": ("TICKETING_KAFKA_DEAD_LETTER_TOPIC",),
    "TICKETING_CONSUMER_GROUP": ("TICKETING_KAFKA_CONSUMER_GROUP",),
    "TICKETING_TOPIC_PARTITIONS": ("TICKETING_KAFKA_PARTITIONS",),
    "TICKETING_TOPIC_REPLICATION": ("TICKETING_KAFKA_REPLICATION_FACTOR",),
    "TICKETING_FETCH_MAX_WAIT_MS": ("TICKETING_KAFKA_FETCH_MAX_WAIT_MS",),
    "TICKETING_FETCH_LINGER_MS": ("TICKETING_KAFKA_FETCH_LINGER_MS",),
    "TICKETING_PUBLISH_TIMEOUT_S": ("TICKETING_GATEWAY_PUBLISH_TIMEOUT_S",),
    "TICKETING_UNKNOWN_EVENT_TTL_S": ("TICKETING_GATEWAY_UNKNOWN_EVENT_TTL_S",),
    "TICKETING_PRODUCER_LINGER_MS": ("TICKETING_GATEWAY_PRODUCER_LINGER_MS",),
    "TICKETING_BROKER_BREAKER_THRESHOLD": ("TICKETING_GATEWAY_BROKER_BREAKER_THRESHOLD",),
    "TICKETING_BROKER_BREAKER_RESET_S": ("TICKETING_GATEWAY_BROKER_BREAKER_RESET_S",),
    "TICKETING_BROKER_SILENCE_S": ("TICKETING_GATEWAY_BROKER_SILENCE_S",),
    "TICKETING_SYNC_LOCK_WAIT_S": ("TICKETING_GATEWAY_SYNC_LOCK_WAIT_S",),
    "TICKETING_LOCK_TTL_MS": ("TICKETING_CONSUMER_LOCK_TTL_MS", "TICKETING_GATEWAY_LOCK_TTL_MS"),
    "TICKETING_LOCK_WAIT_S": ("TICKETING_CONSUMER_LOCK_WAIT_S",),
    "TICKETING_BREAKER_THRESHOLD": ("TICKETING_CONSUMER_BREAKER_THRESHOLD",),
    "TICKETING_BREAKER_RESET_S": ("TICKETING_CONSUMER_BREAKER_RESET_S",),
    "TICKETING_MAX_DECISIONS_PER_S": ("TICKETING_CONSUMER_MAX_DECISIONS_PER_S",),
    "TICKETING_PG_POOL_SIZE": (
        "TICKETING_CONSUMER_POOL_SIZE",
        "TICKETING_GATEWAY_POOL_SIZE",
        "TICKETING_NOTIFIER_POOL_SIZE",
        "TICKETING_RESERVATION_POOL_SIZE",
    ),
    "TICKETING_LISTEN_HOST": ("TICKETING_STACK_LISTEN_HOST",),
    "TICKETING_LISTEN_PORT": ("TICKETING_STACK_LISTEN_PORT",),
    "TICKETING_GATEWAYS": ("TICKETING_STACK_GATEWAYS",),
    "TICKETING_CONSUMERS": ("TICKETING_STACK_CONSUMERS",),
    "TICKETING_RESERVATION_SERVICES": ("TICKETING_STACK_RESERVATION_SERVICES",),
    "TICKETING_NOTIFIERS": ("TICKETING_STACK_NOTIFIERS",),
    "TICKETING_KAFKA_NODES": ("TICKETING_STACK_KAFKA_NODES",),
    "TICKETING_KAFKA_HEAP": ("TICKETING_STACK_KAFKA_HEAP",),
    "TICKETING_KAFKA_LIBS": ("TICKETING_STACK_KAFKA_LIBS",),
    "TICKETING_ENDPOINT": ("TICKETING_STACK_ENDPOINT",),
}


def renamed_in(environ: Mapping[str, str]) -> list[str]:
    """One line per old variable name set in ``environ``."""
    return [
        f"{old} was renamed {' / '.join(new)}" for old, new in RENAMED.items() if environ.get(old)
    ]


class _Environment(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        if not issubclass(settings_cls, Settings):
            raise TypeError(f"{settings_cls.__name__} is not a ticketing Settings class")
        self._settings_cls: type[Settings] = settings_cls

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return os.environ.get(variable(self._settings_cls, field_name)), field_name, False

    def __call__(self) -> dict[str, Any]:
        renamed = renamed_in(os.environ)
        if renamed:
            raise ConfigError("\n".join(renamed))
        return read_environment(self._settings_cls, os.environ)


# -- errors ----------------------------------------------------------------


def _variable_at(cls: type[Settings], loc: tuple[int | str, ...]) -> str:
    name = loc[0] if loc else None
    field = cls.model_fields.get(name) if isinstance(name, str) else None
    if field is None or not isinstance(name, str):
        return ".".join(str(part) for part in loc) or cls.__name__
    group = group_of(field)
    if group is not None:
        if len(loc) > 1:
            return _variable_at(group, loc[1:])
        # A check of the group as a whole (its message names the variables).
        return f"{group.model_config.get('env_prefix', PREFIX)}*"
    return variable(cls, name)


def _field_at(cls: type[Settings], loc: tuple[int | str, ...]) -> tuple[str, FieldInfo] | None:
    """The setting an error is about, or None for a check of several."""
    name = loc[0] if loc else None
    field = cls.model_fields.get(name) if isinstance(name, str) else None
    if field is None or not isinstance(name, str):
        return None
    group = group_of(field)
    if group is not None:
        return _field_at(group, loc[1:]) if len(loc) > 1 else None
    return name, field


def _is_secret(name: str, field: FieldInfo) -> bool:
    """A setting whose value is, or may hold, a secret: typed SecretStr,
    kept out of repr, or a URL or DSN (which may carry a password)."""
    return (
        "SecretStr" in str(field.annotation)
        or field.repr is False
        or name.endswith(("_dsn", "_url"))
    )


def _without_password(url: str) -> str | None:
    """``url`` with its password replaced by ``***``; None if it does not
    read as a URL (then it is not shown at all)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _shown_input(cls: type[Settings], loc: tuple[int | str, ...], value: object) -> str | None:
    """How an error shows the bad value: as given, but never a secret. A
    check of several settings shows none (its input is all their values)."""
    found = _field_at(cls, loc)
    if found is None:
        return None
    name, field = found
    if _is_secret(name, field):
        if name.endswith(("_dsn", "_url")) and isinstance(value, str):
            return _without_password(value)
        return None
    return _shown(value)


def _shown(value: object) -> str:
    if isinstance(value, str) and value and value.strip() == value and " " not in value:
        return value
    return repr(value)


def _problem(error: ErrorDetails) -> str:
    ctx = error.get("ctx", {})
    kind = error["type"]
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        return f"must be {sign} {ctx[key]}"
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        return "must be an integer"
    if kind in {"float_parsing", "float_type"}:
        return "must be a number"
    if kind == "literal_error":
        return f"must be {ctx['expected']}"
    return str(error["msg"][:1].lower() + error["msg"][1:])


def explain(cls: type[Settings], error: ValidationError) -> list[str]:
    """One line per bad variable, e.g.
    ``TICKETING_CONSUMER_MAX_BATCH must be >= 1, got 0``; the value of a
    secret is never shown (``_shown_input``)."""
    lines = []
    for detail in error.errors():
        loc = tuple(detail["loc"])
        if detail["type"] == "missing":
            lines.append(f"{_variable_at(cls, loc)} is required")
            continue
        shown = _shown_input(cls, loc, detail["input"])
        got = "" if shown is None else f", got {shown}"
        lines.append(f"{_variable_at(cls, loc)} {_problem(detail)}{got}")
    return lines


# -- what every service shares ---------------------------------------------

DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/ticketing"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

LogLevel = Annotated[
    Literal["debug", "info", "warning", "error"],
    BeforeValidator(lambda value: value.lower() if isinstance(value, str) else value),
]


def _instance_id() -> str:
    return f"{os.uname().nodename}-{os.getpid()}"


class ServerSettings(Settings):
    """What every gRPC server shares: where it listens, how long it drains."""

    model_config = settings_config()

    host: str = Field(
        "127.0.0.1",
        description="address the gRPC server binds; in production one nginx can reach",
        examples=["0.0.0.0"],
    )
    port: int = Field(
        0,
        ge=0,
        le=65_535,
        description="gRPC port; `0` picks a free port. The consumer serves health checks only",
    )
    shutdown_grace_s: float = Field(
        10.0,
        ge=0,
        description="time in-flight calls get after SIGTERM; keep it below the orchestrator's "
        "stop timeout",
    )
    drain_delay_s: float = Field(
        0.0,
        ge=0,
        description="after SIGTERM, how long the server reports `NOT_SERVING` while still "
        "taking calls, so load balancers stop sending before calls are refused; set it to "
        "a little more than their health-check interval (e.g. 5 behind Kubernetes or Envoy). "
        "The consumer, which no load balancer calls, stops at once",
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65_535,
        description="port of the Prometheus metrics endpoint (`/metrics`, on the gRPC host); "
        "`0` picks a free port",
    )
    tracing_otlp_endpoint: str | None = Field(
        None,
        description="send OpenTelemetry traces to this OTLP/gRPC collector; unset, tracing is "
        "off and costs nothing",
        examples=["http://otel-collector:4317"],
    )
    tracing_sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="share of the traces that start here (a call without a sampled "
        "`traceparent`) that are recorded; a caller's sampled trace is always followed",
    )
    log_level: LogLevel = Field(
        "info",
        description="how much is logged, as JSON lines on stderr; the libraries' own "
        "(aiokafka, asyncpg, grpc) at warning and above, with a `logger` field",
    )
    reflection: bool = Field(
        True,
        description="serve gRPC server reflection (what `grpcurl list` reads); switch it off "
        "in production if the API should not describe itself",
    )
    instance_id: str = Field(
        default_factory=_instance_id,
        description="names the instance in logs, Kafka client ids and the Redis lock owner; "
        "keep it unique per process",
        json_schema_extra={"shown_default": "<hostname>-<pid>"},
    )
    tls_cert_file: str | None = Field(
        None,
        description="serve TLS with this certificate chain (PEM), with `TICKETING_TLS_KEY_FILE`; "
        "unset, plaintext (loopback, or a network only the load balancer reaches)",
        examples=["/etc/ticketing/tls/service.crt"],
    )
    tls_key_file: str | None = Field(
        None,
        description="the private key (PEM) of `TICKETING_TLS_CERT_FILE`",
        examples=["/etc/ticketing/tls/service.key"],
    )
    tls_client_ca_file: str | None = Field(
        None,
        description="with TLS: accept only clients (the load balancer) presenting a certificate "
        "this CA bundle (PEM) signed, i.e. mutual TLS",
        examples=["/etc/ticketing/tls/clients-ca.crt"],
    )

    @model_validator(mode="after")
    def _tls_files_together(self) -> Self:
        cert, key = (
            variable(ServerSettings, "tls_cert_file"),
            variable(ServerSettings, "tls_key_file"),
        )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(f"{cert} and {key} go together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError(
                f"{variable(ServerSettings, 'tls_client_ca_file')} needs {cert} and {key}"
            )
        return self

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials from the configured files (read now), or None for
        plaintext."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        client_ca = Path(self.tls_client_ca_file).read_bytes() if self.tls_client_ca_file else None
        return grpc.ssl_server_credentials(
            [(Path(self.tls_key_file).read_bytes(), Path(self.tls_cert_file).read_bytes())],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )


class AuthSettings(Settings):
    """How every server verifies its callers' bearer tokens (JWT)."""

    model_config = settings_config("AUTH")

    jwks_file: str | None = Field(
        None,
        description="JWKS document with the public keys tokens are signed with (ES256 or "
        "EdDSA, chosen by `kid`: publish a new key next to the old one to rotate); re-read "
        "every `TICKETING_AUTH_JWKS_REFRESH_S` and when a token names a key it does not hold "
        "(at most once a second). This or `TICKETING_AUTH_JWKS_URL` is required",
        examples=["/etc/ticketing/jwks.json"],
    )
    jwks_url: str | None = Field(
        None,
        description="instead of `TICKETING_AUTH_JWKS_FILE`: the identity provider's JWKS "
        "address, e.g. `https://id.example.com/.well-known/jwks.json` (https; http only to "
        "a loopback address), fetched as the file is read, with a 5 s timeout and no "
        "redirects",
    )
    jwks_refresh_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="how often the JWKS is re-read: a key removed from it is refused, and "
        "tokens it verified are forgotten, within this",
    )
    max_token_lifetime_s: float = Field(
        24 * 3600.0,
        gt=0,
        description="the longest lifetime (`exp - iat`) a token may have; a longer one is "
        "refused as UNAUTHENTICATED",
    )
    issuer: str = Field("ticketing", description="the `iss` every token must carry")
    audience: str = Field("ticketing", description="the `aud` every token must carry")
    leeway_s: float = Field(30.0, ge=0, le=300, description="clock skew allowed on `exp` and `nbf`")
    roles_claim: str = Field(
        "roles", description="claim holding the caller's roles (`customer`, `admin`)"
    )
    tier_claim: str = Field("tier", description="claim holding the caller's priority tier")
    cache_size: int = Field(
        100_000,
        ge=0,
        description="verified tokens remembered until they expire (LRU), so a token is "
        "checked once, not on every call",
    )

    @model_validator(mode="after")
    def _one_jwks(self) -> Self:
        if self.jwks_file and self.jwks_url:
            raise ValueError(
                f"{variable(AuthSettings, 'jwks_file')} and "
                f"{variable(AuthSettings, 'jwks_url')} exclude each other"
            )
        if self.jwks_url:
            check_url(self.jwks_url)
        return self

    def verifier_config(self) -> VerifierConfig:
        return VerifierConfig(
            issuer=self.issuer,
            audience=self.audience,
            leeway_s=self.leeway_s,
            jwks_file=self.jwks_file,
            jwks_url=self.jwks_url,
            jwks_refresh_s=self.jwks_refresh_s,
            max_lifetime_s=self.max_token_lifetime_s,
            roles_claim=self.roles_claim,
            tier_claim=self.tier_claim,
            cache_size=self.cache_size,
        )


def _json_object(value: object) -> object:
    """A JSON object given as text (an environment variable), as a dict."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError("must be a JSON object") from None
    return value


RecordKeySecrets = Annotated[
    dict[
        Annotated[str, Field(pattern=KEY_ID_PATTERN)],
        Annotated[SecretStr, Field(min_length=32)],
    ],
    BeforeValidator(_json_object),
]


class ReservationIdSecret(Settings):
    """Mixed into the settings of the processes that derive reservation ids
    and sign or verify the requests topic's records (the record keys)."""

    model_config = settings_config()

    reservation_id_secret: str = Field(
        min_length=32,
        repr=False,
        description="the current record key's secret: reservation ids are derived with it "
        "(HMAC of caller, key and event), so nobody can compute or squat another user's "
        "reservation, and the gateways sign every record with it; at least 32 characters. "
        "Rotate it as the README's security model says, never by changing it in place",
        examples=["<32+ random characters from your secrets manager>"],
        json_schema_extra={"shown_default": "required"},
    )
    reservation_key_id: str = Field(
        "k1",
        pattern=KEY_ID_PATTERN,
        description="the current record key's id, named in every record a gateway signs; a "
        "consumer verifies a record with the key it names (`ticketing-admin record-key` makes "
        "a new key)",
    )
    reservation_verify_keys: RecordKeySecrets = Field(
        default_factory=dict,
        repr=False,
        description="other record keys accepted besides the current one, never used to sign: "
        "a JSON object of key id to secret (32+ characters). During a rotation, the new key "
        "before it signs and the old one until its records are decided and its retries over",
        examples=['{"k20260501-3f9a0c1d": "<32+ random characters>"}'],
    )

    @field_validator("reservation_verify_keys")
    @classmethod
    def _no_second_secret_for_the_current_key(
        cls, keys: dict[str, SecretStr], info: ValidationInfo
    ) -> dict[str, SecretStr]:
        current = info.data.get("reservation_key_id")
        if current in keys and keys[current].get_secret_value() != info.data.get(
            "reservation_id_secret"
        ):
            raise ValueError(f"names the current key {current!r} with another secret")
        return keys

    def record_keys(self) -> RecordKeys:
        secrets = {
            k: v.get_secret_value().encode() for k, v in self.reservation_verify_keys.items()
        }
        secrets[self.reservation_key_id] = self.reservation_id_secret.encode()
        return RecordKeys(self.reservation_key_id, secrets)


class PostgresClient(Settings):
    """Mixed into the settings of every process that opens PostgreSQL."""

    model_config = settings_config()

    postgres_dsn: str = Field(
        DEFAULT_POSTGRES_DSN,
        description="PostgreSQL; the schema must be migrated (`ticketing-admin migrate`; the "
        "services only check it)",
        examples=["postgresql://ticketing:change-me@db.internal:5432/ticketing"],
    )
    pool_acquire_timeout_s: float = Field(
        5.0,
        gt=0,
        description="longest wait for a free PostgreSQL connection from the process's pool; "
        "past it the call answers UNAVAILABLE (a RetryInfo advises when to retry) and the "
        "consumer retries its batch",
    )


class RedisClient(Settings):
    """Mixed into the settings of every process that uses Redis."""

    model_config = settings_config()

    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        description="Redis: event locks and fencing tokens, and the record of accepted "
        "requests (idempotency keys, queued requests)",
        examples=["redis://redis.internal:6379/0"],
    )


class AcceptedRequestsStore(Settings):
    """Mixed into the settings of the processes that keep or read the record
    of accepted requests (the gateway writes it, the reservation service reads it)."""

    model_config = settings_config()

    accepted_redis_url: str | None = Field(
        None,
        description="Redis for the record of accepted requests (idempotency keys, queued "
        "requests), if not `TICKETING_REDIS_URL`: it grows with the requests (about 200 "
        "bytes each, for `TICKETING_GATEWAY_IDEMPOTENCY_TTL_S`), and a separate Redis keeps "
        "that growth away from the event locks and fencing tokens",
        examples=["redis://redis-accepted.internal:6379/0"],
    )


class KafkaSettings(Settings):
    """The Kafka client settings: where the broker is, the topics, the group."""

    model_config = settings_config("KAFKA")

    bootstrap: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers, comma-separated",
        examples=["kafka-1.internal:9092,kafka-2.internal:9092,kafka-3.internal:9092"],
    )
    requests_topic: str = Field("ticketing.reservation-requests", description="requests topic")
    results_topic: str = Field("ticketing.reservation-results", description="results topic")
    dead_letter_topic: str = Field(
        "ticketing.reservation-requests.dlq", description="dead-letter topic"
    )
    payments_topic: str = Field(
        "ticketing.payments",
        description="the payment saga's commands (from the outbox, read by the payment service)",
    )
    saga_group: str = Field(
        "ticketing-saga", description="consumer group of the payment services' saga workers"
    )
    consumer_group: str = Field(
        "ticketing-consumer",
        description="consumer group; the notifier reads its committed offsets, so consumers "
        "and notifiers must agree",
    )
    partitions: int = Field(
        6,
        ge=1,
        description="partitions of each topic; only the launcher and `deploy/kafka-topics.sh` "
        "create topics, the services never do",
    )
    replication_factor: int = Field(
        1,
        ge=1,
        description="replicas of each partition of the topics the launcher creates (unset, "
        "with a local cluster: its size, at most 3); `deploy/kafka-topics.sh` defaults to 3",
        examples=[3],
    )
    # Readers (consumers, notifier feeds) long-poll: the broker holds a fetch
    # that finds nothing this long, and answers as soon as a record arrives.
    fetch_max_wait_ms: int = Field(
        500,
        ge=1,
        description="how long the broker holds a fetch that finds nothing (a long-poll: a "
        "record arriving answers it at once)",
    )
    # Under load a linger means one fetch (and one decision transaction) per
    # many records instead of one per few; a request passes two readers (the
    # consumer and the notifier's results feed), so it costs twice this at most.
    fetch_linger_ms: int = Field(
        5,
        ge=0,
        le=1_000,
        description="after handling a batch, how long a reader lets records gather before "
        "taking the next: one fetch and one decision transaction per many records under "
        "load, at most this much added latency per reader",
    )
    # How the clients prove who they are: each service its own SASL user,
    # so the broker's ACLs let only gateways append requests and only
    # consumers append results (see `ticketing-admin kafka-acls`).
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        "PLAINTEXT",
        description="how the Kafka clients connect; `SASL_SSL` in production, `SASL_PLAINTEXT` "
        "on the local stack's loopback broker",
        examples=["SASL_SSL"],
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism, with a `SASL_*` protocol"
    )
    sasl_username: str | None = Field(
        None,
        description="this process's Kafka user, with a `SASL_*` protocol: one per service "
        "(the ACLs are per user)",
        examples=["gateway"],
    )
    sasl_password: SecretStr | None = Field(
        None, description="the Kafka user's password", examples=["<from your secrets manager>"]
    )
    ssl_cafile: str | None = Field(
        None,
        description="CA bundle the broker's certificate is checked against, with `SSL` or "
        "`SASL_SSL` (unset: the system's)",
    )

    @model_validator(mode="after")
    def _credentials_with_sasl(self) -> Self:
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"{variable(KafkaSettings, 'sasl_username')} and "
                f"{variable(KafkaSettings, 'sasl_password')} are required with "
                f"{variable(KafkaSettings, 'security_protocol')}={self.security_protocol}"
            )
        return self

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka client: where the brokers are
        and how to authenticate."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.endswith("SSL"):
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        if self.security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return options
