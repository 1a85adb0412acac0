"""A bad setting is named with its problem, and a secret's value is never
shown: not in the lines a service prints before it exits, not in anything
it logs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError, field_validator, model_validator
from structlog.testing import capture_logs

from consumer_service.settings import ConsumerSettings
from gateway.settings import GatewaySettings
from payment_service.settings import PaymentSettings
from ticketing_common.config import (
    KafkaSettings,
    PostgresClient,
    RedisClient,
    _without_password,
    explain,
    settings_config,
)
from ticketing_common.runtime import settings_or_exit

PASSWORD = "hunter2-s3cret-Pa55word"
LONG_SECRET = f"{PASSWORD}-{'x' * 40}"


def _exit_output(
    settings: type[GatewaySettings | ConsumerSettings | PaymentSettings],
    capsys: pytest.CaptureFixture[str],
) -> str:
    with capture_logs() as logged, pytest.raises(SystemExit) as stopped:
        settings_or_exit(settings)
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    return f"{out}\n{err}\n{logged!r}"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        # A DSN that is not one, holding a password.
        ("TICKETING_POSTGRES_DSN", f"postgresql://gateway:{PASSWORD}@db:notaport/x", None),
        ("TICKETING_REDIS_URL", f"redis://gateway:{PASSWORD}@cache:6379/0", None),
        # Too short to be accepted: the value itself is the secret.
        ("TICKETING_RESERVATION_ID_SECRET", PASSWORD, "at least 32 characters"),
    ],
)
def test_a_bad_secret_setting_is_named_but_never_shown(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    problem: str | None,
) -> None:
    monkeypatch.setenv("TICKETING_RESERVATION_ID_SECRET", LONG_SECRET)
    monkeypatch.setenv(variable, value)
    # Something else wrong too, so the error is raised whatever the secret's
    # own validation allows.
    monkeypatch.setenv("TICKETING_GATEWAY_POOL_SIZE", "0")
    output = _exit_output(GatewaySettings, capsys)
    assert "TICKETING_GATEWAY_POOL_SIZE must be >= 1, got 0" in output
    assert PASSWORD not in output
    if problem is not None:
        assert variable in output and problem in output


def test_a_wrong_secret_settings_check_shows_no_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A check of several settings at once (SASL without a user name): its
    input is every value of the group, the password among them."""
    monkeypatch.setenv("TICKETING_RESERVATION_ID_SECRET", LONG_SECRET)
    monkeypatch.setenv("TICKETING_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TICKETING_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("TICKETING_POSTGRES_DSN", f"postgresql://consumer:{PASSWORD}@db/x")
    output = _exit_output(ConsumerSettings, capsys)
    assert "TICKETING_KAFKA_SASL_USERNAME" in output
    assert "TICKETING_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in output
    assert PASSWORD not in output


def test_a_bad_value_of_an_ordinary_setting_is_shown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TICKETING_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("TICKETING_PAYMENT_POOL_SIZE", "lots")
    output = _exit_output(PaymentSettings, capsys)
    assert "TICKETING_PAYMENT_POOL_SIZE must be an integer, got lots" in output
    assert PASSWORD not in output


class _Checked(PostgresClient, RedisClient):
    """Settings whose own checks fail on a DSN, and on several at once."""

    model_config = settings_config("CHECKED")

    kafka: KafkaSettings = KafkaSettings.with_defaults()

    @field_validator("postgres_dsn")
    @classmethod
    def _needs_a_database(cls, value: str) -> str:
        if not value.rstrip("/").rsplit("/", 1)[-1].isidentifier():
            raise ValueError("must name a database")
        return value

    @model_validator(mode="after")
    def _different_servers(self) -> _Checked:
        if "same-host" in self.postgres_dsn and "same-host" in self.redis_url:
            raise ValueError("TICKETING_POSTGRES_DSN and TICKETING_REDIS_URL share a host")
        return self


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"TICKETING_POSTGRES_DSN": f"postgresql://app:{PASSWORD}@db/"},
            "TICKETING_POSTGRES_DSN value error, must name a database, "
            "got postgresql://app:***@db/",
        ),
        (
            {
                "TICKETING_POSTGRES_DSN": f"postgresql://app:{PASSWORD}@same-host/x",
                "TICKETING_REDIS_URL": f"redis://app:{PASSWORD}@same-host/0",
            },
            "value error, TICKETING_POSTGRES_DSN and TICKETING_REDIS_URL share a host",
        ),
    ],
)
def test_a_dsn_in_an_error_keeps_its_password_hidden(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], expected: str
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        _Checked()
    (line,) = explain(_Checked, refused.value)
    assert line.endswith(expected)
    assert PASSWORD not in line


def test_a_url_setting_shows_where_but_not_the_password() -> None:
    assert _without_password(f"redis://gateway:{PASSWORD}@cache:6379/0") == (
        "redis://gateway:***@cache:6379/0"
    )
    assert _without_password("postgresql://db.internal/ticketing") == (
        "postgresql://db.internal/ticketing"
    )
    assert _without_password(f"not a url {PASSWORD}") is None
